# The top of an Apache httpd.conf, shared by the tests under real web
# servers (lib-servers.sh) and scripts/bench; sourced, not run. Needs WORK.

# As root, Apache (and lighttpd) hand requests to workers of this user; the
# CGI program runs as it, so the pool and the files it reads must be its.
WEB_USER=www-data
WEB_GROUP=www-data
APACHE_MODULES=/usr/lib/apache2/modules

# apache_conf_head PORT MPM MODULE...: the top of an httpd.conf for a test
# Apache in $WORK/apache listening on PORT, loading the MPM and MODULEs; the
# caller adds its own directives after it.
apache_conf_head() {
  local port=$1 mpm=$2 module
  shift 2
  cat <<EOF
ServerRoot "$WORK/apache"
DefaultRuntimeDir "$WORK/apache"
PidFile "$WORK/apache/httpd.pid"
ErrorLog "$WORK/apache/error.log"
LogLevel warn
Listen 127.0.0.1:$port
ServerName 127.0.0.1
LoadModule mpm_${mpm}_module $APACHE_MODULES/mod_mpm_$mpm.so
LoadModule authz_core_module $APACHE_MODULES/mod_authz_core.so
EOF
  for module in "$@"; do
    echo "LoadModule ${module}_module $APACHE_MODULES/mod_$module.so"
  done
  cat <<EOF
User $WEB_USER
Group $WEB_GROUP
DocumentRoot "$WORK/apache"
EOF
}
