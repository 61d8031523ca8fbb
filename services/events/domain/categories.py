"""Event categories known to every tenant until per-tenant category trees arrive.

A category code is dotted (`area.topic`) so routing rules can match a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    default_severity: int
    sla_minutes: int
    duplicate_radius_m: float = 50.0
    duplicate_window_minutes: int = 120


DEFAULT_CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("safety.fire_hazard", "Fire hazard", 3, 30),
        Category("safety.smoke_alarm", "Smoke alarm", 4, 5, 20.0, 30),
        Category("safety.flooding", "Waterlogging or flooding", 4, 30),
        Category("safety.ebike_charging", "E-bike charging indoors", 3, 120),
        Category("environment.garbage", "Garbage or littering", 2, 1440, 50.0, 1440),
        Category("environment.sewage", "Sewage or blocked drain", 2, 1440),
        Category("environment.living", "Rural living environment", 2, 2880),
        Category("construction.illegal", "Illegal construction", 3, 2880),
        Category("roads.damage", "Damaged road or path", 2, 2880, 30.0, 10080),
        Category("public.facility", "Broken public facility", 2, 2880),
        Category("neighbourhood.dispute", "Neighbour dispute", 2, 4320),
        Category("care.elderly_welfare", "Welfare check for an elderly resident", 4, 60),
    )
}
