"""Units (centers, departments, town offices), people, roles and duty rosters."""
