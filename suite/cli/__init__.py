"""The command line: ``main`` dispatches to one module per subcommand.

The edge of the program: argparse lives here and nowhere else; each subcommand parses its
arguments, builds its typed configuration once and calls into the packages below.
May import: everything in ``suite`` (it is the top layer); nothing imports it.
"""
