"""Programme progress (seed tables 4, 5 and 7), computed from cases and consent events only."""
