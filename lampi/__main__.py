from lampi.cli.main import main

main()
