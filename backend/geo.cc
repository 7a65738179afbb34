#include "backend/geo.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace edge::backend {

using nlohmann::json;

double distanceKm(const GeoPoint& a, const GeoPoint& b) {
  constexpr double kEarthRadiusKm = 6371.0088;
  constexpr double kRad = M_PI / 180.0;
  double dlat = (b.lat - a.lat) * kRad;
  double dlon = (b.lon - a.lon) * kRad;
  double h = std::sin(dlat / 2) * std::sin(dlat / 2) + std::cos(a.lat * kRad) *
                                                           std::cos(b.lat * kRad) *
                                                           std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(h)));
}

Result<GeoPoint> parseGeoPoint(const json& j, std::string_view path) {
  std::string p(path);
  if (!j.is_object()) return Status::invalidArgument(p + ": expected {\"lat\": .., \"lon\": ..}");
  auto lat = j.find("lat");
  auto lon = j.find("lon");
  if (lat == j.end() || !lat->is_number() || lon == j.end() || !lon->is_number())
    return Status::invalidArgument(p + ": expected numbers lat and lon");
  GeoPoint g{lat->get<double>(), lon->get<double>()};
  if (!(g.lat >= -90 && g.lat <= 90))
    return Status::invalidArgument(p + ".lat: " + std::to_string(g.lat) + " is outside [-90, 90]");
  if (!(g.lon >= -180 && g.lon <= 180))
    return Status::invalidArgument(p + ".lon: " + std::to_string(g.lon) +
                                   " is outside [-180, 180]");
  return g;
}

Result<GeoPoint> parseGeoPointText(std::string_view text, std::string_view what) {
  std::string t(text);
  auto comma = t.find(',');
  std::string w(what);
  if (comma == std::string::npos)
    return Status::invalidArgument(w + ": \"" + t + "\" is not \"lat,lon\" (e.g. 48.85,2.35)");
  char* end = nullptr;
  errno = 0;
  double lat = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + comma || errno != 0)
    return Status::invalidArgument(w + ": \"" + t + "\": the latitude is not a number");
  const char* lon_start = t.c_str() + comma + 1;
  double lon = std::strtod(lon_start, &end);
  if (end == lon_start || *end != '\0' || errno != 0)
    return Status::invalidArgument(w + ": \"" + t + "\": the longitude is not a number");
  return parseGeoPoint(json{{"lat", lat}, {"lon", lon}}, what);
}

}  // namespace edge::backend
