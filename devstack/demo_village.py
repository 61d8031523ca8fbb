"""A synthetic demo town for the map component: Anting Town with two villages.

ALL DATA HERE IS INVENTED. The town boundary, the villages Xingming and Xiangyang, their
grid cells and grid workers, buildings, points of interest and residents are generated
from a seed. Only the rough location (Anting Town, Jiading District, Shanghai, around
31.29 N 121.16 E) and the shapes of the codes are real: the administrative codes follow
the 12-digit layout, resident ID numbers carry the Jiading prefix 310114 and a valid
GB 11643 check digit, and phone numbers look like mobile numbers, so that validators
accept them, but they belong to nobody. Every record has `synthetic = 1` and the file
says so in its metadata.

Why it exists: the map service, the tests and local runs need a village with a realistic
shape and density (thousands of buildings in hamlets, a grid that tiles each village,
people linked to houses) without ever touching personal data. The output is
deterministic: the same seed gives byte-identical geometries and the same ids.

Layers (EPSG:4326, lon/lat): `admin_boundaries`, `grid_cells`, `buildings`, `pois`,
`residents`, an attribute table without geometry, and `roads`, a lattice of lanes
through each village whose lines meet at shared vertices, so command's dispatch measures
by road on the demo town (services/command/domain/roads.py). The residents' names, ID numbers and
phones are not written to the file (invented as they are, they look real, and a map
file is copied around): `residents_for(path)` regenerates them from the seed the file
records, for seeding the empower service, which keeps them sealed.

    python -m devstack.demo_village --out var/demo-village.gpkg [--seed N]
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyogrio.raw
import shapely
from shapely.geometry import LineString, Polygon

from services.kit import gb11643
from services.map.domain.metric import metres_per_degree

TOWN_TENANT = "sh/jiading/anting"
VILLAGE_TENANTS = ("sh/jiading/anting/xingming", "sh/jiading/anting/xiangyang")
DEFAULT_SEED = 20261127
DEFAULT_BUILDINGS_PER_VILLAGE = 2400
MIN_BUILDINGS_PER_VILLAGE = 300
CRS = "EPSG:4326"

# In the order a GeoPackage lists them: layers with geometry, then attribute tables.
LAYERS = ("admin_boundaries", "grid_cells", "buildings", "pois", "roads", "residents")
BUILDING_USES = ("residential", "commercial", "public", "industrial", "agricultural")
POI_KINDS = (
    "hydrant",
    "shelter",
    "waste_station",
    "clinic",
    "village_committee",
    "scenic_spot",
    "parking",
)

# The boundaries and grid do not depend on the seed: a tenant keeps its territory whatever
# demo content is generated inside it, so maps and cached grid lookups stay comparable.
_BOUNDARY_SEED = 31_29_121_16
_TOWN_CODE = "310114103000"  # plausible: Jiading 310114, town 103, "000" for the town
_VILLAGE_CODES = ("310114103201", "310114103202")  # village committees use 2xx
_ID_REGION = "310114"  # Jiading District
_REFERENCE_YEAR = 2026  # "now" for ages, so the output does not depend on the clock

# Local metric frame around Xingming: metres east/north of the origin. Degree lengths
# come from the WGS84 series; within a few km the error is far below a building's size.
ORIGIN_LON, ORIGIN_LAT = 121.16, 31.29
M_PER_DEG_LON, M_PER_DEG_LAT = metres_per_degree(ORIGIN_LAT)

_GRID_LATTICE = 4  # 4 x 4 lattice over each village's bounding box
# Lanes every 100 m east-west and north-south (from the origin, so both villages share
# the lattice), a main road every fourth; a lane runs between crossings inside its village.
_ROAD_SPACING_M = 100.0
_MAIN_ROAD_EVERY = 4
_SLIVER_SHARE = 0.05  # pieces under 5% of a full lattice cell join a neighbour
_BUILDING_GAP_M = 2.0  # minimum clearance between buildings (eaves, lanes)
_CELL_MARGIN_M = 1.0  # buildings keep this far inside their grid cell
_SCATTERED_SHARE = 0.15  # buildings among the fields rather than in hamlets

_SURNAMES = (
    "Shen", "Gu", "Lu", "Xu", "Zhu", "Zhou", "Qian", "Jin", "Zhang", "Wang", "Li", "Chen",
    "Wu", "Sun", "Yang", "Huang", "Cai", "Tang", "Yao", "Pan", "Fan", "Jiang", "Ni", "Shi",
    "Ma", "Zhao", "Ye", "Tao",
)  # fmt: skip
_MALE_NAMES = (
    "Jianguo", "Guoqiang", "Jianhua", "Weiming", "Zhiqiang", "Hongwei", "Xiaoming", "Jun",
    "Gang", "Yong", "Haitao", "Wenjie", "Junjie", "Hao", "Yuxuan", "Zihao", "Haoran", "Minghui",
    "Genbao", "Ahfu", "Xuegen", "Jinrong", "Dehua", "Lei",
)  # fmt: skip
_FEMALE_NAMES = (
    "Xiuying", "Guiying", "Meifang", "Yulan", "Fengying", "Xiuzhen", "Lihua", "Hong", "Li",
    "Juan", "Yan", "Jing", "Min", "Xiaoyan", "Jiayi", "Zihan", "Siyu", "Yutong", "Xinyi",
    "Meilan", "Amei", "Caidi", "Qiaozhen", "Yun",
)  # fmt: skip
_SCENIC_NAMES = (
    "Old Stone Bridge", "Ginkgo Tree", "Riverside Pavilion", "Lotus Pond", "Ancestral Hall",
    "Orchard Walk",
)  # fmt: skip
_POI_COUNTS = {  # (low, high) inclusive per village: 20 to 34 in total
    "hydrant": (10, 15),
    "shelter": (1, 2),
    "waste_station": (4, 7),
    "clinic": (1, 1),
    "village_committee": (1, 1),
    "scenic_spot": (1, 3),
    "parking": (2, 5),
}
_POI_LABELS = {
    "hydrant": "Hydrant",
    "shelter": "Emergency Shelter",
    "waste_station": "Waste Station",
    "parking": "Parking",
}


@dataclass(frozen=True)
class DemoSummary:
    """What `generate` wrote, so callers and the CLI can report it without reopening."""

    path: str
    seed: int
    admin_boundaries: int
    grid_cells: int
    buildings: int
    pois: int
    residents: int
    roads: int = 0
    village_tenants: tuple[str, ...] = VILLAGE_TENANTS

    def counts(self) -> dict[str, int]:
        """Feature count per layer, keyed by layer name."""
        return {layer: getattr(self, layer) for layer in LAYERS}

    def line(self) -> str:
        """A one-line report for logs and the terminal."""
        counts = ", ".join(f"{n} {layer}" for layer, n in self.counts().items())
        villages = ", ".join(self.village_tenants)
        return f"wrote {self.path} (seed {self.seed}, SYNTHETIC): {counts}; villages {villages}"


@dataclass(frozen=True)
class _Layer:
    name: str
    geometry: np.ndarray | None  # shapely geometries, or None for an attribute table
    geometry_type: str | None
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


def _lonlat(x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ORIGIN_LON + x_m / M_PER_DEG_LON, ORIGIN_LAT + y_m / M_PER_DEG_LAT


def _blob(
    rng: np.random.Generator,
    centre_m: tuple[float, float],
    radii_m: tuple[float, float],
    vertices: int,
    roughness: float,
) -> Polygon:
    """An irregular polygon, star-shaped around its centre, hence always simple and valid.

    Angles increase strictly and the radius stays positive (a few low harmonics of bounded
    amplitude plus per-vertex jitter), which is what rules out self-intersections.
    """
    step = 2 * math.pi / vertices
    theta = np.arange(vertices) * step + rng.uniform(-0.3, 0.3, vertices) * step
    radius = np.ones(vertices)
    for k in range(2, 6):
        radius += rng.uniform(0.3, 1.0) * roughness / k * np.cos(k * theta + rng.uniform(0, 6.3))
    radius *= rng.uniform(0.94, 1.06, vertices)
    lon, lat = _lonlat(
        centre_m[0] + radii_m[0] * radius * np.cos(theta),
        centre_m[1] + radii_m[1] * radius * np.sin(theta),
    )
    return Polygon(np.column_stack([lon, lat]))


def _roads(village: Polygon, slug: str, title: str) -> list[tuple[str, str, str, LineString]]:
    """(road_id, name, kind, line) of a village's lanes: the lattice's runs between
    crossings that lie inside the village. Every crossing is a vertex of both lines
    through it, computed from the same numbers, so the lines join there."""
    lon0, lat0, lon1, lat1 = village.bounds
    x0, x1 = (lon0 - ORIGIN_LON) * M_PER_DEG_LON, (lon1 - ORIGIN_LON) * M_PER_DEG_LON
    y0, y1 = (lat0 - ORIGIN_LAT) * M_PER_DEG_LAT, (lat1 - ORIGIN_LAT) * M_PER_DEG_LAT
    xs = np.arange(math.floor(x0 / _ROAD_SPACING_M), math.ceil(x1 / _ROAD_SPACING_M) + 1)
    ys = np.arange(math.floor(y0 / _ROAD_SPACING_M), math.ceil(y1 / _ROAD_SPACING_M) + 1)
    lon, _ = _lonlat(xs * _ROAD_SPACING_M, np.zeros(len(xs)))
    _, lat = _lonlat(np.zeros(len(ys)), ys * _ROAD_SPACING_M)
    inside = shapely.contains_xy(village, *np.meshgrid(lon, lat))  # [row j, column i]
    roads: list[tuple[str, str, str, LineString]] = []

    def runs(mask: np.ndarray) -> list[tuple[int, int]]:
        """(first, last) of each run of two or more crossings inside the village."""
        found, start = [], None
        for k, kept in enumerate([*mask.tolist(), False]):
            if kept and start is None:
                start = k
            elif not kept and start is not None:
                if k - start >= 2:
                    found.append((start, k - 1))
                start = None
        return found

    for axis, count in (("east-west", len(ys)), ("north-south", len(xs))):
        for n in range(count):
            line_index = int(ys[n] if axis == "east-west" else xs[n])
            main = line_index % _MAIN_ROAD_EVERY == 0
            mask = inside[n, :] if axis == "east-west" else inside[:, n]
            for first, last in runs(mask):
                k = np.arange(first, last + 1)
                points = (
                    np.column_stack([lon[k], np.full(len(k), lat[n])])
                    if axis == "east-west"
                    else np.column_stack([np.full(len(k), lon[n]), lat[k]])
                )
                number = len(roads) + 1
                label = "Road" if main else "Lane"
                roads.append(
                    (
                        f"{slug}-rd{number:03d}",
                        f"{title} {label} {number}",
                        "main" if main else "lane",
                        LineString(points),
                    )
                )
    return roads


def _boundaries() -> tuple[Polygon, tuple[Polygon, Polygon]]:
    """The town and its two villages; adjacent villages share the border where they meet."""
    rng = np.random.default_rng(_BOUNDARY_SEED)
    town = _blob(rng, (-200.0, 0.0), (3300.0, 3000.0), 44, 0.18)
    xingming = _blob(rng, (0.0, 0.0), (880.0, 800.0), 36, 0.3)
    xiangyang = _blob(rng, (1700.0, 250.0), (900.0, 760.0), 36, 0.3)
    xiangyang = shapely.difference(xiangyang, xingming)
    for village in (xingming, xiangyang):
        if not (
            isinstance(village, Polygon) and village.is_valid and shapely.contains(town, village)
        ):
            raise RuntimeError("demo boundaries are malformed; change _BOUNDARY_SEED")
    return town, (xingming, xiangyang)


def _grid_cells(rng: np.random.Generator, village: Polygon) -> list[Polygon]:
    """Cells that tile the village: a jittered lattice clipped to it, slivers merged away.

    Lattice lines are shared floats, so neighbouring pieces meet exactly and their union
    is the village. Merging a sliver into the neighbour with the longest shared edge keeps
    the tiling and gives no cell a hard-to-patrol splinter.
    """
    n = _GRID_LATTICE
    xmin, ymin, xmax, ymax = village.bounds
    jitter = np.r_[0.0, rng.uniform(-0.15, 0.15, n - 1), 0.0]
    xs = xmin + (np.arange(n + 1) + jitter) * (xmax - xmin) / n
    jitter = np.r_[0.0, rng.uniform(-0.15, 0.15, n - 1), 0.0]
    ys = ymax - (np.arange(n + 1) + jitter) * (ymax - ymin) / n  # north to south
    full_area = (xmax - xmin) * (ymax - ymin) / (n * n)

    pieces: list[Polygon] = []
    keys: list[tuple[int, int, float]] = []  # row, column, west-to-east within a lattice cell
    for row in range(n):
        for col in range(n):
            clipped = shapely.intersection(
                village, shapely.box(xs[col], ys[row + 1], xs[col + 1], ys[row])
            )
            for part in shapely.get_parts(clipped):
                if isinstance(part, Polygon) and part.area > 0:
                    pieces.append(part)
                    keys.append((row, col, part.centroid.x))

    while True:
        small = [i for i, p in enumerate(pieces) if p.area < _SLIVER_SHARE * full_area]
        if not small:
            break
        i = min(small, key=lambda j: (pieces[j].area, keys[j]))
        best: tuple[float, int, Polygon] | None = None
        for j, other in enumerate(pieces):
            if j == i:
                continue
            shared = shapely.intersection(pieces[i].boundary, other.boundary).length
            if shared <= 0 or (best is not None and shared <= best[0]):
                continue
            merged = shapely.union(pieces[i], other)
            if isinstance(merged, Polygon):
                best = (shared, j, merged)
        if best is None:
            raise RuntimeError("a grid sliver has no neighbour to merge into")
        _, j, merged = best
        pieces[j] = merged
        del pieces[i], keys[i]

    order = sorted(range(len(pieces)), key=lambda k: keys[k])
    return [pieces[k] for k in order]


@dataclass(frozen=True)
class _Hamlets:
    """Clusters of houses (自然村) that buildings and most POIs gather around."""

    lon: np.ndarray
    lat: np.ndarray
    sigma_m: np.ndarray
    angle: np.ndarray
    weight: np.ndarray
    industrial: np.ndarray


def _points_inside(
    rng: np.random.Generator, area: Polygon, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points strictly inside a polygon, by rejection from its bounding box."""
    xmin, ymin, xmax, ymax = area.bounds
    lon: list[float] = []
    lat: list[float] = []
    while len(lon) < count:
        x = rng.uniform(xmin, xmax, 4 * count)
        y = rng.uniform(ymin, ymax, 4 * count)
        inside = shapely.contains_xy(area, x, y)
        lon.extend(x[inside].tolist())
        lat.extend(y[inside].tolist())
    return np.array(lon[:count]), np.array(lat[:count])


def _hamlets(rng: np.random.Generator, village: Polygon) -> _Hamlets:
    count = int(rng.integers(14, 20))
    core = shapely.buffer(village, -150 / M_PER_DEG_LAT)
    lon, lat = _points_inside(rng, core if not core.is_empty else village, count)
    industrial = np.zeros(count, dtype=bool)
    industrial[0] = True  # one workshop cluster per village: Anting is a car-industry town
    return _Hamlets(
        lon=lon,
        lat=lat,
        sigma_m=rng.uniform(35.0, 85.0, count),
        angle=rng.uniform(0.0, math.pi / 2, count),
        weight=rng.uniform(0.5, 1.5, count),
        industrial=industrial,
    )


def _candidates(
    rng: np.random.Generator, village: Polygon, hamlets: _Hamlets, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """n rotated rectangles, most around hamlets and aligned with them; -1 marks scattered."""
    p = hamlets.weight / hamlets.weight.sum()
    hamlet = rng.choice(len(p), size=n, p=p)
    scattered = rng.random(n) < _SCATTERED_SHARE
    hamlet[scattered] = -1
    xmin, ymin, xmax, ymax = village.bounds
    lon = np.where(
        scattered,
        rng.uniform(xmin, xmax, n),
        hamlets.lon[hamlet] + rng.normal(0, 1, n) * hamlets.sigma_m[hamlet] / M_PER_DEG_LON,
    )
    lat = np.where(
        scattered,
        rng.uniform(ymin, ymax, n),
        hamlets.lat[hamlet] + rng.normal(0, 1, n) * hamlets.sigma_m[hamlet] / M_PER_DEG_LAT,
    )
    angle = np.where(
        scattered,
        rng.uniform(0, math.pi, n),
        hamlets.angle[hamlet] + rng.choice([0.0, math.pi / 2], n) + rng.normal(0, 0.06, n),
    )
    half_l = rng.uniform(8.0, 20.0, n) / 2
    half_w = rng.uniform(6.0, 12.0, n) / 2
    corner_x = np.array([-1, 1, 1, -1, -1])[None, :] * half_l[:, None]
    corner_y = np.array([-1, -1, 1, 1, -1])[None, :] * half_w[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    coords = np.stack(
        [
            lon[:, None] + (corner_x * cos - corner_y * sin) / M_PER_DEG_LON,
            lat[:, None] + (corner_x * sin + corner_y * cos) / M_PER_DEG_LAT,
        ],
        axis=-1,
    )
    return shapely.polygons(coords), hamlet


def _place_buildings(
    rng: np.random.Generator, village: Polygon, cells: Sequence[Polygon], count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Hamlets]:
    """Place `count` non-overlapping buildings, each strictly inside one grid cell.

    Candidates come in vectorised batches; an STRtree over the cells (shrunk by a margin)
    assigns each to the cell that contains it, one over the buildings already placed
    rejects crowding, and a greedy pass over the batch's own neighbour pairs keeps the
    earliest of any two candidates that come too close.
    """
    hamlets = _hamlets(rng, village)
    margin = _CELL_MARGIN_M / M_PER_DEG_LAT
    gap = _BUILDING_GAP_M / M_PER_DEG_LAT
    inner = shapely.buffer(np.asarray(cells, dtype=object), -margin, join_style="mitre")
    cell_tree = shapely.STRtree(inner)

    placed: list[np.ndarray] = []
    placed_cells: list[np.ndarray] = []
    placed_hamlets: list[np.ndarray] = []
    total = 0
    for _round in range(60):
        if total >= count:
            break
        remaining = count - total
        cand, hamlet = _candidates(rng, village, hamlets, 2 * remaining + 400)
        cell = np.full(len(cand), -1, dtype=np.int64)
        c_idx, t_idx = cell_tree.query(cand, predicate="within")
        cell[c_idx] = t_idx
        ok = cell >= 0
        if placed:
            tree = shapely.STRtree(np.concatenate(placed))
            near, _ = tree.query(cand, predicate="dwithin", distance=gap)
            ok[near] = False
        idx = np.flatnonzero(ok)
        batch = cand[idx]
        later, earlier = shapely.STRtree(batch).query(batch, predicate="dwithin", distance=gap)
        pairs = later > earlier
        later, earlier = later[pairs], earlier[pairs]
        order = np.argsort(later, kind="stable")
        later, earlier = later[order], earlier[order]
        bounds = np.searchsorted(later, np.arange(len(batch) + 1))
        keep = np.zeros(len(batch), dtype=bool)
        taken = 0
        for k in range(len(batch)):
            if taken == remaining:
                break
            if not keep[earlier[bounds[k] : bounds[k + 1]]].any():
                keep[k] = True
                taken += 1
        chosen = idx[keep]
        placed.append(cand[chosen])
        placed_cells.append(cell[chosen])
        placed_hamlets.append(hamlet[chosen])
        total += taken
    if total < count:
        raise RuntimeError(f"could place only {total} of {count} buildings; village too small")

    geoms = np.concatenate(placed)
    cell = np.concatenate(placed_cells)
    hamlet = np.concatenate(placed_hamlets)
    centroids = shapely.centroid(geoms)
    # Number buildings cell by cell, north to south, so ids read like a survey.
    order = np.lexsort((shapely.get_x(centroids), -shapely.get_y(centroids), cell))
    return geoms[order], cell[order], hamlet[order], hamlets


def _building_attributes(
    rng: np.random.Generator, hamlet: np.ndarray, industrial_hamlets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Use, floors and households: houses of 1-3 floors, sheds among fields, a few works."""
    n = len(hamlet)
    uses = np.array(BUILDING_USES, dtype=object)
    scattered = hamlet < 0
    industrial = ~scattered & industrial_hamlets[np.maximum(hamlet, 0)]
    # residential, commercial, public, industrial, agricultural
    p_hamlet = [0.84, 0.07, 0.03, 0.04, 0.02]
    p_scattered = [0.42, 0.02, 0.01, 0.10, 0.45]
    p_works = [0.20, 0.10, 0.0, 0.70, 0.0]
    use_idx = rng.choice(5, size=n, p=p_hamlet)
    use_idx[scattered] = rng.choice(5, size=int(scattered.sum()), p=p_scattered)
    use_idx[industrial] = rng.choice(5, size=int(industrial.sum()), p=p_works)
    floors_p = {
        0: ([1, 2, 3, 4], [0.15, 0.45, 0.35, 0.05]),
        1: ([1, 2, 3, 4], [0.35, 0.40, 0.20, 0.05]),
        2: ([1, 2, 3, 4], [0.40, 0.35, 0.20, 0.05]),
        3: ([1, 2, 3, 4, 5, 6], [0.40, 0.30, 0.15, 0.08, 0.05, 0.02]),
        4: ([1, 2], [0.85, 0.15]),
    }
    floors = np.zeros(n, dtype=np.int32)
    for u, (values, p) in floors_p.items():
        mask = use_idx == u
        floors[mask] = rng.choice(values, size=int(mask.sum()), p=p)
    households = np.zeros(n, dtype=np.int32)
    residential = use_idx == 0
    households[residential] = rng.integers(1, np.minimum(floors[residential], 3) + 1)
    return uses[use_idx], floors, households


def _person_name(rng: np.random.Generator, male: bool, surname: str | None = None) -> str:
    given = _MALE_NAMES if male else _FEMALE_NAMES
    family = surname if surname is not None else _SURNAMES[rng.integers(len(_SURNAMES))]
    return f"{family} {given[rng.integers(len(given))]}"


def _households(rng: np.random.Generator, people: int) -> list[list[tuple[int, bool, str]]]:
    """Households of (birth year, male, name), like a suburban Shanghai village.

    Many young adults have moved to the city, so elderly couples are common, and about one
    person aged 60+ in eight lives alone.
    """
    out: list[list[tuple[int, bool, str]]] = []
    remaining = people
    while remaining > 0:
        kind = rng.choice(4, p=[0.11, 0.28, 0.07, 0.54])
        members: list[tuple[int, bool]] = []
        if kind == 0:  # an elderly person on their own
            members.append((int(rng.integers(65, 96)), bool(rng.random() < 0.35)))
        elif kind == 1:  # an elderly couple
            age = int(rng.integers(62, 91))
            members += [(age, True), (min(age + int(rng.integers(-5, 3)), 98), False)]
        elif kind == 2:  # a working-age adult on their own
            members.append((int(rng.integers(25, 60)), bool(rng.random() < 0.6)))
        else:  # a family, sometimes with a grandparent
            age = int(rng.integers(30, 59))
            members += [(age, True), (max(age + int(rng.integers(-5, 3)), 22), False)]
            for _ in range(int(rng.integers(1, 3))):
                members.append((int(rng.integers(0, age - 21)), bool(rng.random() < 0.5)))
            if rng.random() < 0.45:
                members.append((min(age + int(rng.integers(24, 33)), 98), bool(rng.random() < 0.4)))
        members = members[:remaining]
        surname = _SURNAMES[rng.integers(len(_SURNAMES))]
        household = []
        for n, (age, male) in enumerate(members):
            # Children and the head share the surname; spouses keep their own.
            shared = n == 0 or (kind == 3 and 2 <= n < len(members) and age < 40)
            name = _person_name(rng, male, surname if shared else None)
            household.append((_REFERENCE_YEAR - age, male, name))
        out.append(household)
        remaining -= len(members)
    return out


def _id_number(rng: np.random.Generator, birth_year: int, male: bool) -> str:
    birthday = date(birth_year, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
    sequence = int(rng.integers(0, 500)) * 2 + (1 if male else 0)  # odd: male, even: female
    first17 = f"{_ID_REGION}{birthday:%Y%m%d}{sequence:03d}"
    return gb11643.with_check_character(first17)


def _phone(rng: np.random.Generator) -> str:
    prefix = ("13", "15", "18")[rng.integers(3)]
    return prefix + "".join(str(d) for d in rng.integers(0, 10, 9))


def _strings(values: Sequence[str]) -> np.ndarray:
    return np.array(values, dtype=object)


def _ints(values: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def _build(seed: int, buildings_per_village: int) -> list[_Layer]:
    """All layers in memory; `generate` only writes them."""
    if buildings_per_village < MIN_BUILDINGS_PER_VILLAGE:
        raise ValueError(
            f"buildings_per_village must be at least {MIN_BUILDINGS_PER_VILLAGE}, "
            "so that every household of 300-400 residents gets a house of its own"
        )
    rng = np.random.default_rng(seed)
    grid_rng = np.random.default_rng(_BOUNDARY_SEED + 1)
    town, villages = _boundaries()
    slugs = [t.rsplit("/", 1)[1] for t in VILLAGE_TENANTS]
    titles = [s.capitalize() for s in slugs]

    admin = _Layer(
        "admin_boundaries",
        np.array([town, *villages], dtype=object),
        "MultiPolygon",
        {
            "tenant": _strings([TOWN_TENANT, *VILLAGE_TENANTS]),
            "name": _strings(["Anting Town", *(f"{t} Village" for t in titles)]),
            "level": _strings(["town", "village", "village"]),
            "parent": _strings(["sh/jiading", TOWN_TENANT, TOWN_TENANT]),
            "admin_code": _strings([_TOWN_CODE, *_VILLAGE_CODES]),
        },
    )

    grid: dict[str, list] = {k: [] for k in ("geom", "id", "name", "tenant", "gw_id", "gw_name")}
    bld: dict[str, list] = {
        k: [] for k in ("geom", "id", "tenant", "cell", "floors", "use", "households")
    }
    poi: dict[str, list] = {k: [] for k in ("geom", "id", "tenant", "kind", "name")}
    res: dict[str, list] = {
        k: [] for k in ("id", "tenant", "building", "name", "id_number", "phone", "birth", "alone")
    }
    used_ids: set[str] = set()
    used_phones: set[str] = set()
    road: dict[str, list] = {k: [] for k in ("geom", "id", "tenant", "name", "kind")}

    for tenant, slug, title, village in zip(VILLAGE_TENANTS, slugs, titles, villages, strict=True):
        cells = _grid_cells(grid_rng, village)
        cell_ids = [f"{slug}-g{i + 1:02d}" for i in range(len(cells))]
        grid["geom"] += cells
        grid["id"] += cell_ids
        grid["name"] += [f"{title} Grid {i + 1:02d}" for i in range(len(cells))]
        grid["tenant"] += [tenant] * len(cells)
        grid["gw_id"] += [f"gw-{slug}-{i + 1:02d}" for i in range(len(cells))]
        grid["gw_name"] += [_person_name(rng, bool(rng.random() < 0.3)) for _ in cells]
        for road_id, name, kind, line in _roads(village, slug, title):
            road["geom"].append(line)
            road["id"].append(road_id)
            road["tenant"].append(tenant)
            road["name"].append(name)
            road["kind"].append(kind)

        geoms, cell, hamlet, hamlets = _place_buildings(rng, village, cells, buildings_per_village)
        uses, floors, households = _building_attributes(rng, hamlet, hamlets.industrial)
        building_ids = [f"{slug}-b{i + 1:04d}" for i in range(len(geoms))]
        bld["geom"] += list(geoms)
        bld["id"] += building_ids
        bld["tenant"] += [tenant] * len(geoms)
        bld["cell"] += [cell_ids[c] for c in cell]
        bld["floors"] += floors.tolist()
        bld["use"] += uses.tolist()
        bld["households"] += households.tolist()

        # Points of interest: outdoors (clear of buildings), mostly near hamlets.
        building_tree = shapely.STRtree(geoms)
        clearance = 1 / M_PER_DEG_LAT
        number = 0
        for kind in POI_KINDS:
            low, high = _POI_COUNTS[kind]
            wanted = int(rng.integers(low, high + 1))
            for k in range(wanted):
                while True:
                    if kind == "scenic_spot":
                        lon, lat = _points_inside(rng, village, 1)
                        x, y = float(lon[0]), float(lat[0])
                    else:
                        h = int(rng.integers(len(hamlets.lon)))
                        spread = hamlets.sigma_m[h] * 1.5
                        x = hamlets.lon[h] + rng.normal(0, spread) / M_PER_DEG_LON
                        y = hamlets.lat[h] + rng.normal(0, spread) / M_PER_DEG_LAT
                    point = shapely.Point(x, y)
                    near = building_tree.query(point, predicate="dwithin", distance=clearance)
                    if not near.size and shapely.contains_xy(village, x, y):
                        break
                number += 1
                if kind == "scenic_spot":
                    name = f"{title} {_SCENIC_NAMES[rng.integers(len(_SCENIC_NAMES))]}"
                elif kind == "village_committee":
                    name = f"{title} Village Committee"
                elif kind == "clinic":
                    name = f"{title} Village Clinic"
                else:
                    name = f"{title} {_POI_LABELS[kind]} {k + 1:02d}"
                poi["geom"].append(point)
                poi["id"].append(f"{slug}-p{number:02d}")
                poi["tenant"].append(tenant)
                poi["kind"].append(kind)
                poi["name"].append(name)

        # Residents: one household per residential building, none shared.
        homes = np.flatnonzero(uses == "residential")
        families = _households(rng, int(rng.integers(300, 401)))
        if len(families) > len(homes):
            raise RuntimeError(f"{tenant}: more households than residential buildings")
        chosen = np.sort(rng.choice(homes, size=len(families), replace=False))
        number = 0
        for home, family in zip(chosen, families, strict=True):
            for birth_year, male, name in family:
                number += 1
                id_number = _id_number(rng, birth_year, male)
                while id_number in used_ids:
                    id_number = _id_number(rng, birth_year, male)
                used_ids.add(id_number)
                phone = _phone(rng)
                while phone in used_phones:
                    phone = _phone(rng)
                used_phones.add(phone)
                res["id"].append(f"{slug}-r{number:04d}")
                res["tenant"].append(tenant)
                res["building"].append(building_ids[home])
                res["name"].append(name)
                res["id_number"].append(id_number)
                res["phone"].append(phone)
                res["birth"].append(birth_year)
                res["alone"].append(int(len(family) == 1))

    return [
        admin,
        _Layer(
            "grid_cells",
            np.array(grid["geom"], dtype=object),
            "Polygon",
            {
                "grid_cell_id": _strings(grid["id"]),
                "name": _strings(grid["name"]),
                "tenant": _strings(grid["tenant"]),
                "grid_worker_id": _strings(grid["gw_id"]),
                "grid_worker_name": _strings(grid["gw_name"]),
            },
        ),
        _Layer(
            "buildings",
            np.array(bld["geom"], dtype=object),
            "Polygon",
            {
                "building_id": _strings(bld["id"]),
                "tenant": _strings(bld["tenant"]),
                "grid_cell_id": _strings(bld["cell"]),
                "floors": _ints(bld["floors"]),
                "use": _strings(bld["use"]),
                "households": _ints(bld["households"]),
            },
        ),
        _Layer(
            "pois",
            np.array(poi["geom"], dtype=object),
            "Point",
            {
                "poi_id": _strings(poi["id"]),
                "tenant": _strings(poi["tenant"]),
                "kind": _strings(poi["kind"]),
                "name": _strings(poi["name"]),
            },
        ),
        # pyogrio writes a GeoPackage attribute table when geometry is None: people are
        # located through their building, not by a point of their own.
        _Layer(
            "residents",
            None,
            None,
            {
                "resident_id": _strings(res["id"]),
                "tenant": _strings(res["tenant"]),
                "building_id": _strings(res["building"]),
                "name": _strings(res["name"]),
                "id_number": _strings(res["id_number"]),
                "phone": _strings(res["phone"]),
                "birth_year": _ints(res["birth"]),
                "lives_alone": _ints(res["alone"]),
            },
        ),
        _Layer(
            "roads",
            np.array(road["geom"], dtype=object),
            "LineString",
            {
                "road_id": _strings(road["id"]),
                "tenant": _strings(road["tenant"]),
                "name": _strings(road["name"]),
                "kind": _strings(road["kind"]),
            },
        ),
    ]


# Columns of `residents` that stay out of the file (see the module docstring).
PERSONAL_COLUMNS = ("name", "id_number", "phone")


def residents(
    seed: int = DEFAULT_SEED, buildings_per_village: int = DEFAULT_BUILDINGS_PER_VILLAGE
) -> dict[str, np.ndarray]:
    """Every column of the residents of the demo made with these parameters, personal
    ones included: regenerated in memory, never read from a file."""
    return dict(_build(seed, buildings_per_village)[4].columns)


def has_roads(path: str | pathlib.Path) -> bool:
    """Whether the file has the road layer (files written before it came have none)."""
    return "roads" in {str(name) for name, _ in pyogrio.list_layers(str(path))}


def holds_personal_columns(path: str | pathlib.Path) -> bool:
    """Whether a demo file (of an older version) has the residents' personal columns."""
    fields = pyogrio.read_info(str(path), layer="residents")["fields"]
    return bool(set(PERSONAL_COLUMNS) & set(fields))


def residents_for(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """`residents` of the demo GeoPackage at `path`, from the parameters it records."""
    meta = pyogrio.read_info(str(path), layer="residents")["layer_metadata"] or {}
    columns = residents(
        int(meta.get("seed", DEFAULT_SEED)),
        int(meta.get("buildings_per_village", DEFAULT_BUILDINGS_PER_VILLAGE)),
    )
    _meta, _fids, _geometry, stored = pyogrio.raw.read(
        str(path), layer="residents", read_geometry=False
    )
    ids = stored[list(_meta["fields"]).index("resident_id")]
    if list(map(str, ids)) != list(map(str, columns["resident_id"])):
        raise ValueError(f"{path} was not made by this generator: regenerate it (make demo)")
    return columns


def generate(
    path: str | pathlib.Path,
    seed: int = DEFAULT_SEED,
    buildings_per_village: int = DEFAULT_BUILDINGS_PER_VILLAGE,
) -> DemoSummary:
    """Write the synthetic demo GeoPackage at `path`, replacing any file there.

    The file is written next to the target and renamed into place, so a service reading
    `path` sees the old file or the new one, never half of one.
    """
    target = pathlib.Path(path)
    layers = _build(seed, buildings_per_village)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial.gpkg")
    partial.unlink(missing_ok=True)
    metadata = {
        "DESCRIPTION": "SYNTHETIC demo data (Anting Town, Jiading, Shanghai): invented, "
        "no record describes a real place, building or person.",
        "synthetic": "true",
        "generator": "devstack.demo_village",
        "seed": str(seed),
        "buildings_per_village": str(buildings_per_village),
    }
    try:
        for n, layer in enumerate(layers):
            kept = {
                name: values
                for name, values in layer.columns.items()
                if layer.name != "residents" or name not in PERSONAL_COLUMNS
            }
            columns = {**kept, "synthetic": np.ones(len(layer), dtype=np.int32)}
            pyogrio.raw.write(
                str(partial),
                geometry=None if layer.geometry is None else shapely.to_wkb(layer.geometry),
                field_data=list(columns.values()),
                fields=list(columns),
                layer=layer.name,
                driver="GPKG",
                geometry_type=layer.geometry_type,
                crs=None if layer.geometry is None else CRS,
                promote_to_multi=layer.geometry_type == "MultiPolygon",
                append=n > 0,
                # Layer metadata, not dataset metadata: with the latter GDAL writes a
                # `.aux.xml` sidecar next to the file whenever a reader opens it.
                layer_metadata=metadata,
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    sizes = {layer.name: len(layer) for layer in layers}
    return DemoSummary(
        path=str(target),
        seed=seed,
        admin_boundaries=sizes["admin_boundaries"],
        grid_cells=sizes["grid_cells"],
        buildings=sizes["buildings"],
        pois=sizes["pois"],
        residents=sizes["residents"],
        roads=sizes["roads"],
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: generate the demo file and print one line about it."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo_village",
        description="Write a synthetic (invented) demo town, Anting with two villages, "
        "as a GeoPackage.",
    )
    parser.add_argument("--out", default="var/demo-village.gpkg", help="GeoPackage to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument(
        "--buildings-per-village",
        type=int,
        default=DEFAULT_BUILDINGS_PER_VILLAGE,
        help="buildings to place in each village",
    )
    args = parser.parse_args(argv)
    summary = generate(args.out, seed=args.seed, buildings_per_village=args.buildings_per_village)
    sys.stdout.write(summary.line() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
