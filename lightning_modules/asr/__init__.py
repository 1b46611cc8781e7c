"""The RNN-T speech recognizer: features, network, decoding and the LightningModule."""
