#!/usr/bin/env python3
"""Tests of check_charts.py itself: each breaks a copy of a real chart in one way a person
could and expects the check to fail with a message naming the place. A checker that
passes everything would pass check_charts' own test too; these make sure it cannot."""
import os
import shutil
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_charts  # noqa: E402

CHARTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "charts")


class BrokenChartTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def copy(self, chart):
        dst = os.path.join(self.tmp.name, chart)
        shutil.copytree(os.path.join(CHARTS, chart), dst)
        return dst

    def edit(self, chart_dir, rel, old, new, count=1):
        path = os.path.join(chart_dir, rel)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.assertIn(old, text, f"the test's anchor is gone from {rel}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new, count))

    def assertFails(self, chart_dir, *fragments):
        problems = check_charts.check_chart(chart_dir)
        joined = "\n".join(problems)
        self.assertTrue(problems, "the check passed a broken chart")
        for frag in fragments:
            self.assertIn(frag, joined)

    def test_unmodified_copies_pass(self):
        for chart in ("edge-backend", "edged"):
            self.assertEqual(check_charts.check_chart(self.copy(chart)), [])

    def test_values_reference_missing_from_values_yaml(self):
        c = self.copy("edged")
        self.edit(c, "templates/daemonset.yaml", "hostPID: {{ .Values.hostPID }}",
                  "hostPID: {{ .Values.host.pid }}")
        self.assertFails(c, "templates/daemonset.yaml:", ".Values.host.pid is not in values.yaml")

    def test_value_read_by_no_template(self):
        c = self.copy("edged")
        self.edit(c, "values.yaml", "hostPID: true", "hostPID: true\nhostIPC: false")
        self.assertFails(c, "hostIPC is read by no template")

    def test_construct_outside_the_subset_is_refused_with_file_and_line(self):
        c = self.copy("edge-backend")
        self.edit(c, "templates/service.yaml", "  type: {{ .Values.service.type }}",
                  "  {{- with .Values.service }}\n  type: {{ .type }}\n  {{- end }}")
        self.assertFails(c, "templates/service.yaml:13: 'with' is outside the template subset")

    def test_unknown_function_is_refused(self):
        c = self.copy("edge-backend")
        self.edit(c, "templates/service.yaml", "{{ .Values.service.type }}",
                  "{{ .Values.service.type | upper }}")
        self.assertFails(c, "templates/service.yaml:13: function 'upper' is outside")

    def test_wrong_indentation_does_not_parse(self):
        c = self.copy("edge-backend")
        self.edit(c, "templates/service.yaml", '{{- include "edge-backend.labels" . | nindent 4 }}',
                  '{{- include "edge-backend.labels" . | nindent 2 }}')
        self.assertFails(c, "templates/service.yaml (values: defaults): rendered document 1 is "
                         "not valid YAML")

    def test_container_without_image(self):
        c = self.copy("edged")
        self.edit(c, "values.yaml", "repository: edged", 'repository: ""')
        self.edit(c, "values.yaml", 'tag: ""', 'tag: "latest"')
        self.edit(c, "templates/daemonset.yaml",
                  'image: {{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion '
                  '.Values.image.tag) | quote }}',
                  "image: {{ .Values.image.repository | quote }}{{/* .Values.image.tag */}}")
        self.assertFails(c, "DaemonSet rel-edged: container edged: image '' is not an image")

    def test_probe_on_a_port_the_container_does_not_declare(self):
        c = self.copy("edge-backend")
        self.edit(c, "templates/deployment.yaml", "port: http", "port: web")
        self.assertFails(c, "livenessProbe port 'web' is not one of its ports")

    def test_selector_that_does_not_match_the_pod_labels(self):
        c = self.copy("edge-backend")
        self.edit(c, "templates/_helpers.tpl", "app.kubernetes.io/component: server",
                  "app.kubernetes.io/component: api")
        self.assertFails(c, "does not match the pod template's labels",
                         "selects no pod of the chart")

    def test_service_target_port_without_container_port(self):
        c = self.copy("edge-backend")
        self.edit(c, "templates/service.yaml", "targetPort: relay", "targetPort: relays")
        self.assertFails(c, "targetPort 'relays' is no container port of Deployment rel-edge-backend")

    def test_command_line_variable_that_no_env_defines(self):
        c = self.copy("edge-backend")
        self.edit(c, "templates/deployment.yaml", "$(EDGE_BACKEND_ISSUER)", "$(EDGE_BACKEND_ISUER)")
        self.assertFails(c, "$(EDGE_BACKEND_ISUER) in its command line is no environment variable")

    def test_missing_app_version_and_bad_version(self):
        c = self.copy("edged")
        self.edit(c, "Chart.yaml", 'appVersion: "0.1.0"\n', "")
        self.edit(c, "Chart.yaml", "version: 0.1.0", "version: 1.0")
        self.assertFails(c, "appVersion is required", "version 1.0 is not SemVer")

    def test_required_value_missing_in_a_test_values_file(self):
        c = self.copy("edge-backend")
        self.edit(c, "ci/external-etcd-values.yaml", "  externalUrl: http://etcd.infra.svc:2379\n", "")
        self.assertFails(c, "required value missing: etcd.externalUrl is required",
                         "(values: ci/external-etcd-values.yaml)")

    def test_typo_in_a_test_values_file(self):
        c = self.copy("edged")
        self.edit(c, "ci/capabilities-values.yaml", "privileged: false", "priviledged: false")
        self.assertFails(c, "priviledged is not in values.yaml")

    def test_secret_data_that_is_not_base64(self):
        c = self.copy("edged")
        self.edit(c, "templates/secret.yaml", ".Values.backend.joinToken | b64enc | quote",
                  ".Values.backend.joinToken | quote")
        self.assertFails(c, "Secret rel-edged: data.join-token is not base64")

    def test_volume_mount_without_volume_and_unknown_config_map(self):
        c = self.copy("edged")
        self.edit(c, "templates/daemonset.yaml", "- name: cgroup\n          hostPath:",
                  "- name: cgroups\n          hostPath:")
        self.edit(c, "templates/daemonset.yaml", "name: {{ include \"edged.fullname\" . }}\n"
                  "              {{- if include", "name: edged-config\n              {{- if include")
        self.assertFails(c, "volumeMount 'cgroup' has no volume",
                         "refers to ConfigMap 'edged-config', which the chart does not render")

    def test_unbalanced_blocks(self):
        c = self.copy("edged")
        self.edit(c, "templates/configmap.yaml", "data:", "{{- if .Values.hostPID }}\ndata:")
        self.assertFails(c, "templates/configmap.yaml: 'if' without its end")

    def test_duplicate_keys_in_a_rendered_object(self):
        c = self.copy("edged")
        self.edit(c, "values.yaml", "  runtime: auto", "  runtime: auto\n  data_dir: /data")
        self.assertFails(c, "duplicate key(s) ['data_dir']")


class RendererTest(unittest.TestCase):
    def render(self, text, values=None):
        defines = {}
        nodes = check_charts.parse(text, "t.yaml", defines)
        root = {"Values": values or {}, "Release": {"Name": "r"}, "Chart": {}}
        return check_charts.Renderer(defines).render(nodes, root, {"$": root})

    def test_trim_markers_range_and_printf(self):
        out = self.render('a:{{- range $i, $e := until 3 }} {{ printf "%d-%s" $i $e }}{{ end }}\n'
                          "{{- if .Values.x }} yes{{ else }} no{{ end }}",
                          {"x": ""})
        self.assertEqual(out, "a: 0-0 1-1 2-2 no")

    def test_nil_field_of_a_missing_map_fails_like_helm(self):
        with self.assertRaisesRegex(check_charts.TemplateError, "t.yaml:1: nil pointer evaluating"):
            self.render("{{ .Values.a.b }}")

    def test_printing_a_map_is_refused(self):
        with self.assertRaisesRegex(check_charts.TemplateError, "use toYaml"):
            self.render("{{ .Values }}", {"a": 1})


if __name__ == "__main__":
    unittest.main()
