"""Event center: cases from every channel through the closed loop, with clocks and evaluation."""
