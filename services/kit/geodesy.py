"""Distances on the sphere, for choices within a district (nearest handler, a carer's
check-in radius, NGSI-LD's `near`); tolerances in real units use `crs.ground_distance_m`
on the ellipsoid instead."""

from __future__ import annotations

import math

import numpy as np

# The mean Earth radius (IUGG), in metres.
EARTH_RADIUS_M = 6_371_008.8


def great_circle_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Metres between two points in degrees (haversine; well within a metre at village scale)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def equirect_m(
    lon1: np.ndarray | float,
    lat1: np.ndarray | float,
    lon2: np.ndarray | float,
    lat2: np.ndarray | float,
) -> np.ndarray:
    """Metres between degree pairs, vectorised: the equirectangular approximation, a few
    array operations instead of trigonometry per pair, within a fraction of a per cent of
    the great circle over a district."""
    mid = np.radians((np.asarray(lat1) + np.asarray(lat2)) / 2)
    x = np.radians(np.asarray(lon2) - np.asarray(lon1)) * np.cos(mid)
    y = np.radians(np.asarray(lat2) - np.asarray(lat1))
    return EARTH_RADIUS_M * np.hypot(x, y)
