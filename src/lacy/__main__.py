from lacy.cli import main

main()
