"""The security monitoring centre (SOC): normalised events, Sigma detections, alerts."""
