"""Replaying the operational loop over past data: an as-of view of the archive
(:mod:`.archive`), live scoring of the models deployers had (:mod:`.live`), the timeline's
records (:mod:`.records`) and its report (:mod:`.report`)."""
