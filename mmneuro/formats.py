"""Names of the input formats, in a module without numerical imports (the CLI's --help reads them)."""

NEURAL_FORMATS = ("phy", "nwb", "table", "spikeinterface")  # readers: mmneuro.neural.readers.read_units
