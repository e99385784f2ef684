"""The application layer on top of the library: the command line, the demo, the server and the farm."""
