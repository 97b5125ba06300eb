"""Dataset preparation: VoxCeleb, MUSAN and RIR folders in the prepared data root, downloads, conversion, the check."""
