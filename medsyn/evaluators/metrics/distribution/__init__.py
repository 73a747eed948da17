"""Further distribution distances and scores, in any feature space: FD-infinity, RBF-MMD,
alpha-precision / beta-recall / authenticity, and the Vendi score."""
