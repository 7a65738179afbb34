#!/bin/sh
# Builds the layer directories of the example images:
#   OUT/base   busybox + applet symlinks, /etc/passwd+group, /tmp, helpers, /wh fixtures
#   OUT/wh     whiteout fixtures: hides /wh/gone.txt, makes /wh/dir opaque, adds new.txt
#   OUT/www    /www/index.html and the start script /usr/bin/hello-httpd of the hello image
# usage: make-rootfs.sh BUSYBOX MEMHOG FORKBOMB INDEX_HTML HELLO_HTTPD OUT
set -eu
busybox=$1 memhog=$2 forkbomb=$3 index=$4 hello_httpd=$5 out=$6
umask 022
rm -rf "$out"
mkdir -p "$out/base/bin" "$out/base/etc" "$out/base/tmp" "$out/base/root" \
         "$out/base/usr/bin" "$out/base/wh/dir" "$out/wh/wh/dir" "$out/www/www" \
         "$out/www/usr/bin"

cp "$busybox" "$out/base/bin/busybox"
chmod 0755 "$out/base/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s /bin/busybox "$out/base/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
  > "$out/base/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$out/base/etc/group"
chmod 1777 "$out/base/tmp"
chmod 0700 "$out/base/root"
cp "$memhog" "$out/base/usr/bin/memhog"
cp "$forkbomb" "$out/base/usr/bin/forkbomb"
chmod 0755 "$out/base/usr/bin/memhog" "$out/base/usr/bin/forkbomb"
echo gone > "$out/base/wh/gone.txt"
echo keep > "$out/base/wh/keep.txt"
echo old > "$out/base/wh/dir/old.txt"

: > "$out/wh/wh/.wh.gone.txt"
: > "$out/wh/wh/dir/.wh..wh..opq"
echo new > "$out/wh/wh/dir/new.txt"

cp "$index" "$out/www/www/index.html"
chmod 0644 "$out/www/www/index.html"
# The gateway forwards /hello/... unchanged (docs/gateway.md): the page is also served
# under the service's base path.
mkdir -p "$out/www/www/hello"
cp "$index" "$out/www/www/hello/index.html"
chmod 0644 "$out/www/www/hello/index.html"
cp "$hello_httpd" "$out/www/usr/bin/hello-httpd"
chmod 0755 "$out/www/usr/bin/hello-httpd"
# The health-check target of examples/hello.yaml.
echo ok > "$out/www/www/healthz"
chmod 0644 "$out/www/www/healthz"
touch "$out/stamp"
