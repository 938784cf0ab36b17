package dev.gradclip.experiment;

/**
 * The clipping thresholds of one sequence length, shared by every strategy and seed.
 *
 * @param maxNorm the norm bound of global and per-tensor clipping
 * @param clipValue the element bound of value clipping
 */
record Thresholds(double maxNorm, double clipValue) {}
