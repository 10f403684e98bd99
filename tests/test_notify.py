"""When the gates reject every candidate, operators hear of it: an event, and a notification
through the Prefect notification block the config names (here a webhook to a local server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from tasks.promote import rejected_all
from tests.factories import tiny_cycle_config
from wxmodels.config.cycle import CycleConfig
from wxmodels.pipeline.records import Candidate, Evaluation, Gate


def test_rejected_all_sends_the_notification(prefect_server, tmp_path):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        CustomWebhookNotificationBlock(
            name="wxc-test",
            url=f"http://127.0.0.1:{server.server_port}/hook",
            json_data={"subject": "{{subject}}", "text": "{{body}}"},
            allow_private_urls=True,
        ).save("wxc-test-hook", overwrite=True)
        raw = tiny_cycle_config(tmp_path)
        raw["promote"]["notify_block"] = "custom-webhook/wxc-test-hook"
        cfg = CycleConfig.model_validate(raw)
        # only the fields the notification reads: a partial record, built without validation
        evaluation = Evaluation.model_construct(
            candidates=[
                Candidate.model_construct(
                    name="prune", gate=Gate(passed=False, reasons=["worse than persistence"])
                ),
                Candidate.model_construct(
                    name="int8", gate=Gate(passed=False, reasons=["RMSE +9 % at 6 h"])
                ),
            ]
        )
        rejected_all(cfg, evaluation, "cycle/test-run")
    finally:
        server.shutdown()
    assert len(received) == 1
    msg = json.loads(received[0])
    assert "no candidate passed" in msg["subject"]
    assert "prune: worse than persistence" in msg["text"] and "int8: RMSE +9 %" in msg["text"]
