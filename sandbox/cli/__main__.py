from sandbox.cli.main import main

main()
