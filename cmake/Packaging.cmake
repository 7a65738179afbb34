# Installation layout and the Debian package (`cpack -G DEB` in a build dir).
#
# The package "edgecloud" holds the node agent and its tools in /usr/bin (edge-shim must
# sit next to edged: the light runtime starts it from its own directory), the systemd
# unit, the default config as a conffile, the bash completion of edgectl and the docs.
# Files outside the prefix (/etc, /lib/systemd) use absolute destinations: they are
# where Debian expects them whatever the prefix.

foreach(tool edged edgectl edge-shim edge-ctr edge-mkimage)
  # edged arrives with the orchestrator; the package is still buildable before it does.
  if(TARGET ${tool})
    install(TARGETS ${tool} RUNTIME DESTINATION bin)
  endif()
endforeach()

install(FILES ${PROJECT_SOURCE_DIR}/packaging/edged.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/config.yaml DESTINATION /etc/edged)
install(FILES ${CMAKE_BINARY_DIR}/completion/edgectl
        DESTINATION share/bash-completion/completions)
install(FILES
          ${PROJECT_SOURCE_DIR}/README.md
          ${PROJECT_SOURCE_DIR}/docs/edgectl.md
          ${PROJECT_SOURCE_DIR}/docs/api.md
          ${PROJECT_SOURCE_DIR}/docs/manifest.md
          ${PROJECT_SOURCE_DIR}/docs/architecture.md
        DESTINATION share/doc/edgecloud)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME edgecloud)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Edgecloud maintainers <maintainers@edgecloud.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "container orchestration node agent for Linux edge hosts")
# The summary is the Description's first line; this is the text below it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "Edgecloud turns a Linux edge host into a cloud node. The node agent edged runs\n\
microservices from manifests on the host's Docker Engine, or on its own light\n\
container runtime (namespaces, cgroups, overlayfs, seccomp) where none runs.\n\
Workloads keep running across restarts of edged.\n\
.\n\
This package holds edged and its systemd unit, the operator CLI edgectl,\n\
edge-shim, edge-ctr and edge-mkimage.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Debug info would triple the package; ship stripped binaries.
set(CPACK_STRIP_FILES TRUE)
# Library dependencies come from dpkg-shlibdeps (dpkg-dev); passwd gives postinst its
# groupadd. Docker is optional: without it the light runtime runs the workloads.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "docker.io")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
# Maintainer scripts 0755 and conffiles 0644 whatever the checkout's modes are.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
