"""Environment variables binexp hands to the processes it starts (Lightning's DDP children, Hydra's
sweep jobs): the verb being run and the keys a sweep sweeps."""

VERB_ENV = "BINEXP_VERB"  # a DDP child re-executed by Lightning runs this verb
SWEPT_ENV = "BINEXP_SWEPT_KEYS"  # comma-separated keys of `binexp train -m` (names job dirs, HParams columns)
NEW_RUN_DIR_ENV = "BINEXP_NEW_RUN_DIR"  # the topmost folder `binexp train` made for its run (removed on bad input)
