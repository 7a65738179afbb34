#!/bin/sh
# The hello image's command: busybox httpd on $PORT (default 18080). The page says
# "Hello from Edgecloud" and the value of $GREETING, so a test can see which
# environment reached the instance. The shell stays PID 1 and passes SIGTERM on to
# httpd (httpd as PID 1 would ignore it and every stop would wait out the grace period).
root=/www
# The page is written at start into a copy of /www: the image's files stay as built,
# and a read-only root filesystem still serves the built page.
if rm -rf /tmp/www && cp -a /www /tmp/www 2>/dev/null; then
  root=/tmp/www
  for page in "$root/index.html" "$root/hello/index.html"; do
    printf '%s\n' '<!doctype html>' '<html><head><title>Edgecloud</title></head>' \
      "<body><h1>Hello from Edgecloud</h1><p id=\"greeting\">${GREETING:-}</p></body></html>" >"$page"
  done
fi
trap 'kill $!; exit 0' TERM INT
httpd -f -v -p "${PORT:-18080}" -h "$root" &
wait
