// edge-mkimage: packs local directories into an image tarball that `docker load` and
// Edgecloud's image store both accept, so tests and demos need no registry.
//
//   edge-mkimage -o out.tar -t name:tag --layer DIR [--layer DIR ...] [--cmd ...] ...
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/mkimage/image_writer.h"

namespace {

using edge::Result;
using edge::Status;
using edge::tools::ImageSpec;
using edge::tools::LayerCompression;
using edge::tools::OutputFormat;

// A JSON array of strings ('["/bin/sh","-c"]') or plain words split on whitespace.
Result<std::vector<std::string>> parseCommand(const std::string& flag, const std::string& text) {
  size_t first = text.find_first_not_of(" \t\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_array()) {
      return Status::invalidArgument(
          flag + ": \"" + text + "\" is not a JSON array; use '[\"cmd\",\"arg\"]' or plain words");
    }
    std::vector<std::string> out;
    for (const auto& v : j) {
      if (!v.is_string()) {
        return Status::invalidArgument(flag + ": every element of the JSON array must be a string");
      }
      out.push_back(v.get<std::string>());
    }
    return out;
  }
  std::vector<std::string> out;
  std::string word;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n') {
      if (!word.empty()) out.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

Result<LayerCompression> parseCompression(const std::string& s) {
  if (s == "none") return LayerCompression::kNone;
  if (s == "gzip") return LayerCompression::kGzip;
  if (s == "zstd") return LayerCompression::kZstd;
  return Status::invalidArgument("--compress \"" + s + "\": use none, gzip or zstd");
}

int fail(const Status& s) {
  std::cerr << "edge-mkimage: " << s.message() << "\n";
  return s.code() == edge::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pack directories into an image tarball (docker load / OCI layout)."};
  std::string output;
  std::vector<std::string> tags, layers, env, labels, compress;
  std::string entrypoint, cmd, format = "both";
  bool has_entrypoint = false, has_cmd = false;
  ImageSpec spec;
  app.add_option("-o,--output", output, "Output tarball")->required();
  app.add_option("-t,--tag", tags, "Image reference name:tag (repeatable)");
  app.add_option("--layer", layers, "Directory packed as one layer, lowest first (repeatable)")
      ->required();
  auto* ep = app.add_option("--entrypoint", entrypoint,
                            "JSON array ('[\"/bin/sh\",\"-c\"]') or plain words");
  auto* cm = app.add_option("--cmd", cmd, "JSON array or plain words");
  app.add_option("--env", env, "KEY=value (repeatable)");
  app.add_option("--workdir", spec.working_dir, "Working directory");
  app.add_option("--user", spec.user, "User (uid, uid:gid, name)");
  app.add_option("--label", labels, "key=value (repeatable)");
  app.add_option("--stop-signal", spec.stop_signal, "Stop signal, e.g. SIGINT");
  app.add_option("--compress", compress,
                 "none|gzip|zstd; once for all layers or once per layer (default gzip)");
  app.add_option("--format", format, "both (OCI layout + manifest.json) | docker | oci")
      ->check(CLI::IsMember({"both", "docker", "oci"}));
  app.add_option("--arch", spec.architecture, "Architecture in the config (default: host)");
  app.add_option("--created", spec.created, "Creation time, RFC 3339 (default: the epoch)");
  app.add_flag("--preserve-mtime", spec.preserve_mtime, "Keep file mtimes (default: 0)");
  app.add_flag("--preserve-owner", spec.preserve_owner, "Keep owners (default: root:root)");
  CLI11_PARSE(app, argc, argv);
  has_entrypoint = ep->count() > 0;
  has_cmd = cm->count() > 0;

  spec.tags = tags;
  spec.env = env;
  spec.format = format == "docker" ? OutputFormat::kDocker
                : format == "oci"  ? OutputFormat::kOci
                                   : OutputFormat::kBoth;
  if (has_entrypoint) {
    auto r = parseCommand("--entrypoint", entrypoint);
    if (!r) return fail(r.status());
    spec.entrypoint = *r;
  }
  if (has_cmd) {
    auto r = parseCommand("--cmd", cmd);
    if (!r) return fail(r.status());
    spec.cmd = *r;
  }
  for (const auto& l : labels) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      return fail(Status::invalidArgument("--label \"" + l + "\": expected key=value"));
    }
    spec.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  if (compress.size() > 1 && compress.size() != layers.size()) {
    return fail(Status::invalidArgument("--compress given " + std::to_string(compress.size()) +
                                        " times for " + std::to_string(layers.size()) +
                                        " layers; give it once or once per layer"));
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    edge::tools::LayerSpec l;
    l.dir = layers[i];
    if (!compress.empty()) {
      auto c = parseCompression(compress.size() == 1 ? compress[0] : compress[i]);
      if (!c) return fail(c.status());
      l.compression = *c;
    }
    spec.layers.push_back(l);
  }
  if (spec.format != OutputFormat::kOci) {
    for (const auto& l : spec.layers) {
      if (l.compression == LayerCompression::kZstd) {
        std::cerr << "edge-mkimage: note: docker load before Docker 23 cannot read zstd "
                     "layers; use gzip for images meant for older Docker\n";
        break;
      }
    }
  }
  auto id = edge::tools::writeImage(spec, output);
  if (!id) return fail(id.status());
  std::cout << *id << "\n";
  return 0;
}
