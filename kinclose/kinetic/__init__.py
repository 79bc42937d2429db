"""Kinetic models: velocity grids, Maxwellians and moments, collision operators, DVM solver, shocks."""
