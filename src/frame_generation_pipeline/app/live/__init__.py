"""The live engine driven from files: a simulated viewer of a session, for `frame-gen live`."""
