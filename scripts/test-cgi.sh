#!/usr/bin/env bash
# The binary as a CGI program under real web servers: Apache 2.4 mod_cgi,
# nginx with fcgiwrap, lighttpd mod_cgi. Each gets the same checks (see
# suite in lib-servers.sh), and --exec in front of a small shell CGI app.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-servers.sh"

# --- Apache 2.4, mod_cgi ---------------------------------------------------
apache_pool=$(new_pool apache)
apache_port=$(free_port)
mkdir -p "$WORK/apache"
cat >"$WORK/apache/httpd.conf" <<EOF
$(apache_conf_head "$apache_port" prefork alias env cgi)

# The binary is the CGI script; it routes on SCRIPT_NAME + PATH_INFO.
ScriptAlias /cgi-bin/fileupload "$BIN"
<Location /cgi-bin/fileupload>
    SetEnv FILEUPLOAD_DIRECTORY "$apache_pool"
    SetEnv FILEUPLOAD_MAX_SIZE $MAX_SIZE
    SetEnv FILEUPLOAD_CORS_ORIGIN $CORS_ORIGIN
</Location>

# The same in front of an existing CGI application.
ScriptAlias /app "$BIN"
<Location /app>
    SetEnv FILEUPLOAD_DIRECTORY "$apache_pool"
    SetEnv FILEUPLOAD_EXEC "$APP"
</Location>

# A setting that stops the program at start.
ScriptAlias /broken "$BIN"
<Location /broken>
    SetEnv FILEUPLOAD_DIRECTORY "$apache_pool"
    SetEnv FILEUPLOAD_MAX_SIZE lots
</Location>
EOF
start apache apache2 -f "$WORK/apache/httpd.conf" -DFOREGROUND
wait_url "http://127.0.0.1:$apache_port/"
suite apache-cgi "http://127.0.0.1:$apache_port/cgi-bin/fileupload" "$apache_pool"
exec_suite apache-cgi-exec "http://127.0.0.1:$apache_port/app" "$apache_pool"
# A program that cannot start still answers in JSON, without details.
code=$(curl -s -o "$WORK/out" -w '%{http_code}' "http://127.0.0.1:$apache_port/broken/upload/status?X-Progress-ID=x")
check "start-up failure" 500 "$code"
check "start-up failure JSON" error "$(jget "$(cat "$WORK/out")" 'j["state"]')"
grep -q 'fileupload: --max-size' "$WORK/apache/error.log" && ok || fail "start-up failure not in the error log"
# A status request under CGI is one process start: keep it cheap.
start_ns=$(date +%s%N)
for i in $(seq 1 20); do curl -s -o /dev/null "http://127.0.0.1:$apache_port/cgi-bin/fileupload/upload/status?X-Progress-ID=x"; done
ms=$((($(date +%s%N) - start_ns) / 20000000))
[ "$ms" -lt 200 ] && ok || fail "a status request under Apache CGI takes ${ms} ms"

# --- nginx with fcgiwrap ----------------------------------------------------
nginx_pool=$(new_pool nginx)
nginx_port=$(free_port)
mkdir -p "$WORK/nginx"
# As Debian's fcgiwrap service does: spawn-fcgi makes the socket, for the
# web user; -c 8 lets status requests run beside uploads.
start fcgiwrap spawn-fcgi -n -s "$WORK/nginx/fcgiwrap.sock" -u "$WEB_USER" -g "$WEB_GROUP" \
  -U "$WEB_USER" -G "$WEB_GROUP" -- /usr/sbin/fcgiwrap -c 8
for i in $(seq 1 100); do [ -S "$WORK/nginx/fcgiwrap.sock" ] && break; sleep 0.05; done
nginx_cgi_params() {
  cat <<EOF
            fastcgi_pass unix:$WORK/nginx/fcgiwrap.sock;
            fastcgi_param SCRIPT_FILENAME $BIN;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
$(nginx_fastcgi_params)
            fastcgi_param PATH /usr/local/bin:/usr/bin:/bin;
            fastcgi_param FILEUPLOAD_DIRECTORY $nginx_pool;
            fastcgi_param FILEUPLOAD_MAX_SIZE $MAX_SIZE;
            fastcgi_param FILEUPLOAD_CORS_ORIGIN $CORS_ORIGIN;
EOF
}
cat >"$WORK/nginx/nginx.conf" <<EOF
$(nginx_conf_head)
    # The program enforces its own limit (FILEUPLOAD_MAX_SIZE).
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$nginx_port;
        location ~ ^/cgi-bin/fileupload(/|\$) {
            # Without this nginx holds the whole body before passing it on,
            # and progress jumps from 0 to done.
            fastcgi_request_buffering off;
            fastcgi_split_path_info ^(/cgi-bin/fileupload)(/.*)?\$;
$(nginx_cgi_params)
        }
        location ~ ^/app(/|\$) {
            fastcgi_request_buffering off;
            fastcgi_split_path_info ^(/app)(/.*)?\$;
$(nginx_cgi_params)
            fastcgi_param FILEUPLOAD_EXEC $APP;
        }
    }
}
EOF
start nginx nginx -c "$WORK/nginx/nginx.conf"
wait_url "http://127.0.0.1:$nginx_port/"
suite nginx-fcgiwrap "http://127.0.0.1:$nginx_port/cgi-bin/fileupload" "$nginx_pool"
exec_suite nginx-fcgiwrap-exec "http://127.0.0.1:$nginx_port/app" "$nginx_pool"

# --- lighttpd, mod_cgi ------------------------------------------------------
lighttpd_pool=$(new_pool lighttpd)
lighttpd_port=$(free_port)
mkdir -p "$WORK/lighttpd/tmp"
chown "$WEB_USER" "$WORK/lighttpd/tmp"
cat >"$WORK/lighttpd/lighttpd.conf" <<EOF
$(lighttpd_conf_head "$lighttpd_port" mod_alias mod_setenv mod_cgi)
alias.url = ("/cgi-bin/fileupload" => "$BIN", "/app" => "$BIN")
\$HTTP["url"] =~ "^/cgi-bin/fileupload(/|\$)" {
    cgi.assign = ("" => "")
    setenv.add-environment = (
        "FILEUPLOAD_DIRECTORY" => "$lighttpd_pool",
        "FILEUPLOAD_MAX_SIZE" => "$MAX_SIZE",
        "FILEUPLOAD_CORS_ORIGIN" => "$CORS_ORIGIN",
    )
}
\$HTTP["url"] =~ "^/app(/|\$)" {
    cgi.assign = ("" => "")
    setenv.add-environment = (
        "FILEUPLOAD_DIRECTORY" => "$lighttpd_pool",
        "FILEUPLOAD_EXEC" => "$APP",
        "PATH" => "/usr/local/bin:/usr/bin:/bin",
    )
}
EOF
start lighttpd lighttpd -D -f "$WORK/lighttpd/lighttpd.conf"
wait_url "http://127.0.0.1:$lighttpd_port/"
suite lighttpd-cgi "http://127.0.0.1:$lighttpd_port/cgi-bin/fileupload" "$lighttpd_pool"
exec_suite lighttpd-cgi-exec "http://127.0.0.1:$lighttpd_port/app" "$lighttpd_pool"

finish
