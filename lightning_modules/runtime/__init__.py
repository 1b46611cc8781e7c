"""The sparse runtime: a pruned RNN-T whose weight products skip the zeros where that pays."""
