"""The method itself: perturbation math, the pass primitive, the adversary and its methods (no fairseq registration)."""
