"""Macroscopic baselines: exact Riemann solver, Euler and Navier–Stokes–Fourier finite volumes,
Becker's shock solution and steady NSF shock profiles (DESIGN §3).

Units follow :mod:`kinclose.physics`: R = 1, p = ρT, E = ½ρu² + (3/2)ρT, γ = 5/3.
Submodules are imported lazily by :mod:`kinclose.models` and :mod:`kinclose.apps.shock`.
"""
