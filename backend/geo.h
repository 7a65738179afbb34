// Points on the Earth and distances between them: node, cluster and relay locations for
// proximity queries and for picking the nearest relay instance.
#pragma once

#include <string_view>

#include "common/json.h"
#include "common/status.h"

namespace edge::backend {

struct GeoPoint {
  double lat = 0;  // degrees, -90..90
  double lon = 0;  // degrees, -180..180
};

// Great-circle distance in km (haversine, mean Earth radius).
double distanceKm(const GeoPoint& a, const GeoPoint& b);
// {"lat": .., "lon": ..} within range; errors name `path` and the allowed range.
Result<GeoPoint> parseGeoPoint(const nlohmann::json& j, std::string_view path);
// "lat,lon" (query strings, flags); errors name `what`.
Result<GeoPoint> parseGeoPointText(std::string_view text, std::string_view what);

}  // namespace edge::backend
