from wxmodels.edge.cli import main

main()
