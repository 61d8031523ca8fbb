// The base map every page draws on. With a tile URL configured (a local tile server on
// an offline intranet) it shows those tiles; without one it draws a plain vector base
// from the tenant's own layers through the REST API: boundaries, grid cells, roads,
// buildings. Leaflet is the gateway's own copy (window.L from /web/vendor/leaflet).
import { api, ApiError } from "./api.js";
import { session } from "./auth.js";

/* global L */
const BASE_LAYERS = {
  // drawn bottom to top; the key is the layer id's last segment
  boundaries: { color: "#4a4a4a", weight: 2, fill: false, interactive: false },
  "grid-cells": { color: "#1f5fa8", weight: 1, fillColor: "#1f5fa8", fillOpacity: 0.04, interactive: false },
  roads: { color: "#9a9a9a", weight: 3, interactive: false },
  buildings: { color: "#7a7a7a", weight: 0.5, fillColor: "#d4d4d4", fillOpacity: 0.9, interactive: false },
  pois: { radius: 3, color: "#5b3c88", weight: 1, fillColor: "#5b3c88", fillOpacity: 0.8, interactive: false },
};
const MAX_FEATURES = 20000; // per layer: enough for a town, bounded for a phone

let configPromise = null;

/** The gateway's page settings: tile URL, attribution, and the CRS taps and positions are in. */
export function pageConfig() {
  if (!configPromise) configPromise = fetch("/web/config.json").then((r) => r.json());
  return configPromise;
}

async function features(restPath, crs) {
  const all = [];
  let token = "";
  do {
    const params = new URLSearchParams({ page_size: "10000" });
    if (crs && crs !== "EPSG:4326") params.set("crs", crs);
    if (token) params.set("page_token", token);
    const page = await api(`${restPath}/features?${params}`);
    all.push(...page.features);
    token = page.next_page_token || "";
  } while (token && all.length < MAX_FEATURES);
  return all;
}

// Drawn after the page is usable, in a pane of their own under the others: thousands
// of buildings take longer to fetch and draw than everything else together.
const LATE = ["buildings"];

function drawOne(map, into, key, items) {
  const style = BASE_LAYERS[key];
  const options = { style, pointToLayer: (_f, at) => L.circleMarker(at, style) };
  if (LATE.includes(key)) {
    if (!map.getPane("late")) map.createPane("late").style.zIndex = "350";
    options.renderer = L.canvas({ pane: "late" });
    options.pane = "late";
  }
  into[key] = into[key] || L.featureGroup().addTo(map);
  L.geoJSON({ type: "FeatureCollection", features: items }, options).addTo(into[key]);
}

/**
 * Draw the tenant's layers named in `wanted`; those the caller may not read are left out.
 * Resolves once all but the late ones are drawn, with {drawn, late}: `late` resolves
 * when the buildings are drawn too.
 */
async function drawVectorBase(map, tenant, crs, wanted, lateAfter) {
  let layers;
  try {
    layers = (await api(`/v1/tenants/${tenant}/layers?page_size=1000`)).layers;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) return { drawn: {}, late: Promise.resolve() };
    throw error;
  }
  const chosen = layers
    .map((layer) => ({ layer, key: layer.name.split("/").pop() }))
    .filter((x) => wanted.includes(x.key))
    .sort((a, b) => wanted.indexOf(a.key) - wanted.indexOf(b.key));
  const load = (list) => Promise.all(list.map(async ({ layer, key }) => ({ key, items: await features(`/v1/${layer.name}`, crs).catch(() => []) })));
  const later = lateAfter.then(() => load(chosen.filter((x) => LATE.includes(x.key))));
  const drawn = {}; // key -> one group for all of the subtree's layers of that kind
  for (const { key, items } of await load(chosen.filter((x) => !LATE.includes(x.key)))) {
    if (items.length) drawOne(map, drawn, key, items);
  }
  const frame = drawn["grid-cells"] || Object.values(drawn)[0];
  if (frame && frame.getBounds().isValid()) map.fitBounds(frame.getBounds(), { padding: [8, 8] });
  const late = later.then((loaded) => {
    for (const { key, items } of loaded) if (items.length) drawOne(map, drawn, key, items);
    if (!frame && Object.values(drawn)[0]) map.fitBounds(Object.values(drawn)[0].getBounds(), { padding: [8, 8] });
  });
  return { drawn, late };
}

/**
 * A Leaflet map in `element` for the tenant (a REST tenant id such as sh-jiading-anting);
 * its layers are drawn only for a signed-in person holding map:read (residents do not).
 * Returns {map, crs, deviceCrs, layers}: `crs` is what a tap on this map is in; `layers`
 * maps each drawn kind ("grid-cells", "buildings", ..., "tiles") to its Leaflet layer;
 * `complete` resolves when the buildings are drawn too (performance mark "base-drawn");
 * they are fetched once `lateAfter` resolves, so a page can draw its own data first.
 */
export async function baseMap(element, tenant, { lateAfter = Promise.resolve() } = {}) {
  const config = await pageConfig();
  const map = L.map(element, { preferCanvas: true, attributionControl: false, zoomSnap: 0.5 });
  L.control.attribution({ prefix: '<a href="/web/vendor/leaflet/LICENSE">Leaflet</a>' }).addTo(map);
  map.setView([31.23, 121.47], 11);
  let layers = {};
  let complete = Promise.resolve();
  if (config.tile_url) {
    layers.tiles = L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "", maxZoom: 20 }).addTo(map);
  }
  const held = session();
  const mayRead = held && held.me && held.me.scopes.includes("map:read");
  if (tenant && mayRead) {
    try {
      // Over tiles only the outlines; without tiles the whole plain base.
      const wanted = config.tile_url ? ["boundaries", "grid-cells"] : Object.keys(BASE_LAYERS);
      const base = await drawVectorBase(map, tenant, config.tile_crs, wanted, lateAfter);
      layers = Object.assign(base.drawn, layers); // the late ones join `layers` when drawn
      complete = base.late.then(() => {
        element.dataset.base = Object.keys(layers).join(" ");
        performance.mark("base-drawn");
      });
    } catch {
      // offline, or the map component down: the page works without a base
    }
  }
  element.dataset.base = Object.keys(layers).join(" ") || "none";
  return { map, crs: config.tile_crs || "EPSG:4326", deviceCrs: config.device_crs || "EPSG:4326", layers, complete };
}

/** Whether [x, y] lies inside a GeoJSON Polygon's or MultiPolygon's coordinates (even-odd rule, holes too). */
function inside(point, geometry) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  const [x, y] = point;
  return polygons.some((rings) => {
    let odd = false;
    for (const ring of rings) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
        const [xi, yi] = ring[i];
        const [xj, yj] = ring[j];
        if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) odd = !odd;
      }
    }
    return odd;
  });
}

/**
 * The villages where reports can be made, from the public outlines (no account
 * needed), those of the tenant path `within` and below: drawn on `map`, which is
 * framed to them. Resolves to
 * {villages, villageAt(latlng)}: the village a point in the map's CRS lies in, or null;
 * with no outlines (offline, none published) `villages` is 0 and villageAt answers undefined.
 */
export async function reportArea(map, tenant, within) {
  const config = await pageConfig();
  const crs = config.tile_crs || "EPSG:4326";
  const params = crs === "EPSG:4326" ? "" : `?${new URLSearchParams({ crs })}`;
  let outlines = [];
  try {
    outlines = (await api(`/v1/tenants/${tenant}/reportArea${params}`)).features.filter(
      (f) => f.geometry && (f.properties.tenant === within || String(f.properties.tenant).startsWith(`${within}/`)),
    );
  } catch {
    // offline: the map stays where it is and the service checks the place on sending
  }
  if (outlines.length) {
    const drawn = L.geoJSON({ type: "FeatureCollection", features: outlines }, { style: BASE_LAYERS.boundaries }).addTo(map);
    map.fitBounds(drawn.getBounds(), { padding: [8, 8] });
  }
  map.getContainer().dataset.villages = String(outlines.length);
  const villageAt = (latlng) => {
    if (!outlines.length) return undefined;
    const found = outlines.find((f) => inside([latlng.lng, latlng.lat], f.geometry));
    return found ? found.properties.name || found.properties.tenant : null;
  };
  return { villages: outlines.length, villageAt };
}
