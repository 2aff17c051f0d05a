"""Names of the input formats, in a module without numerical imports (the CLI's --help reads them)."""

NEURAL_FORMATS = ("phy", "nwb", "table", "spikeinterface")  # readers: mmneuro.neural.readers.read_units
UNIT_SORTS = ("shared", "own")  # the sessions table's units column: one sort for these sessions, or its own
