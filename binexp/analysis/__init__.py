"""What binexp computes from networks and runs: bit accounting, sign-bit entropy, per-layer
diagnostics, the model summary, run reports, the papers' figures and the paper-value check."""
