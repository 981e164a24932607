"""OpAMP server: the sans-I/O protocol core (``core``) and generated protobufs (``proto``)."""
