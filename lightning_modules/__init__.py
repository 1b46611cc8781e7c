"""The parts Lightning runs: the RNN-T ASR module, its data, and (later) the pruning callbacks."""
