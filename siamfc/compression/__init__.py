"""Feature-Distilling compression: step transitions, the phase driver and the transform."""
