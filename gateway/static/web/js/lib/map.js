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

/** Draw the tenant's layers named in `wanted`; those the caller may not read are left out. */
async function drawVectorBase(map, tenant, crs, wanted) {
  let layers;
  try {
    layers = (await api(`/v1/tenants/${tenant}/layers?page_size=1000`)).layers;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) return [];
    throw error;
  }
  const chosen = layers
    .map((layer) => ({ layer, key: layer.name.split("/").pop() }))
    .filter((x) => wanted.includes(x.key))
    .sort((a, b) => wanted.indexOf(a.key) - wanted.indexOf(b.key));
  const loaded = await Promise.all(
    chosen.map(async ({ layer, key }) => ({ key, items: await features(`/v1/${layer.name}`, crs).catch(() => []) })),
  );
  const drawn = {};
  for (const { key, items } of loaded) {
    if (items.length) drawn[key] = L.geoJSON({ type: "FeatureCollection", features: items }, { style: BASE_LAYERS[key] }).addTo(map);
  }
  const frame = drawn["grid-cells"] || Object.values(drawn)[0];
  if (frame && frame.getBounds().isValid()) map.fitBounds(frame.getBounds(), { padding: [8, 8] });
  return Object.keys(drawn);
}

/**
 * A Leaflet map in `element` for the tenant (a REST tenant id such as sh-jiading-anting);
 * its layers are drawn only for a signed-in person holding map:read (residents do not).
 * Returns {map, crs, deviceCrs, drawn}: `crs` is what a tap on this map is in.
 */
export async function baseMap(element, tenant) {
  const config = await pageConfig();
  const map = L.map(element, { preferCanvas: true, attributionControl: false, zoomSnap: 0.5 });
  L.control.attribution({ prefix: '<a href="/web/vendor/leaflet/LICENSE">Leaflet</a>' }).addTo(map);
  map.setView([31.23, 121.47], 11);
  let drawn = [];
  if (config.tile_url) {
    L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "", maxZoom: 20 }).addTo(map);
    drawn = ["tiles"];
  }
  const held = session();
  const mayRead = held && held.me && held.me.scopes.includes("map:read");
  if (tenant && mayRead) {
    try {
      // Over tiles only the outlines; without tiles the whole plain base.
      const wanted = config.tile_url ? ["boundaries", "grid-cells"] : Object.keys(BASE_LAYERS);
      drawn = drawn.concat(await drawVectorBase(map, tenant, config.tile_crs, wanted));
    } catch {
      // offline, or the map component down: the page works without a base
    }
  }
  element.dataset.base = drawn.join(" ") || "none";
  return { map, crs: config.tile_crs || "EPSG:4326", deviceCrs: config.device_crs || "EPSG:4326", drawn };
}
