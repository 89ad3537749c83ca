#!/usr/bin/env bash
# Builds the local Docker images Kiln's tests run, with no registry: each image is a root
# filesystem assembled on this machine and fed to `docker import`.
#
# Idempotent and fast: the root filesystem is packed into a reproducible tarball (sorted
# names, fixed mtimes and owners), and its sha256 is stored as the image label
# `kiln.test-image.digest`. When the tagged image already carries that digest, nothing is
# imported. Any change of content (busybox upgrade, new file) rebuilds the image.
#
# Adding an image: write `rootfs_<name> DIR` (fill DIR, may set extra `--change` lines in
# IMPORT_CHANGES, and "uid:gid ./path" entries in OWNED_PATHS for directories that belong to
# another user than root) and add "<name> <tag>" to TEST_IMAGES below.
#
# Environment:
#   KILN_BUSYBOX   path to a statically linked busybox (default: Debian's busybox-static)
#   DOCKER         docker CLI to use (default: docker)
set -euo pipefail
umask 022

# name  tag
TEST_IMAGES=(
  "busybox kiln-test/busybox:latest"
  "nonroot kiln-test/busybox-nonroot:latest"
  "git kiln-test/git:latest"
  "postgres kiln-test/postgres:latest"
  "go kiln-test/go:latest"
)

DOCKER=${DOCKER:-docker}
DIGEST_LABEL=kiln.test-image.digest
# One epoch for every file, so the same content always packs into the same bytes.
EPOCH=@0

log() { printf 'build-test-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-test-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Prints the path of a statically linked busybox. Debian's busybox-static ships one at
# /bin/busybox; the dynamic `busybox` package conflicts with it, so its presence is proof.
find_static_busybox() {
  if [[ -n ${KILN_BUSYBOX:-} ]]; then
    [[ -x $KILN_BUSYBOX ]] || die "KILN_BUSYBOX=$KILN_BUSYBOX is not executable"
    printf '%s\n' "$KILN_BUSYBOX"
    return
  fi
  if [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) == "install ok installed" ]]; then
    printf '%s\n' /bin/busybox
    return
  fi
  log "busybox-static is not installed; fetching the package with apt-get download"
  local dl="$WORK/deb"
  mkdir -p "$dl"
  (cd "$dl" && apt-get download busybox-static >&2) \
    || die "cannot get busybox-static: install it (apt-get install -y busybox-static) or set KILN_BUSYBOX"
  dpkg-deb -x "$dl"/busybox-static_*.deb "$dl/x"
  printf '%s\n' "$dl/x/bin/busybox"
}

# Minimal POSIX userland: busybox with an applet symlink per command (what
# `busybox --install -s` would create), the directories steps rely on, and two users.
rootfs_busybox() {
  local dir=$1 bb
  bb=$(find_static_busybox)
  mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,root,workspace,tmp,proc,sys,dev}
  chmod 1777 "$dir/tmp"
  chmod 700 "$dir/root"
  install -m 755 "$bb" "$dir/bin/busybox"
  local applet
  while IFS= read -r applet; do
    [[ $applet == linuxrc || -e $dir/$applet ]] && continue
    ln -s /bin/busybox "$dir/$applet"
  done < <("$dir/bin/busybox" --list-full)
  [[ -L $dir/bin/sh ]] || die "busybox at $bb has no sh applet"
  cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$dir/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF
  IMPORT_CHANGES=(
    'CMD ["sh"]'
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  )
}

# The busybox userland run as the unprivileged user `builder` (1000:1000), who owns /workspace
# and its home: the shape of CI images that do not build as root.
rootfs_nonroot() {
  local dir=$1
  rootfs_busybox "$dir"
  mkdir -p "$dir/home/builder"
  printf '%s\n' 'builder:x:1000:1000:builder:/home/builder:/bin/sh' >>"$dir/etc/passwd"
  printf '%s\n' 'builder:x:1000:' >>"$dir/etc/group"
  IMPORT_CHANGES+=('USER builder' 'ENV HOME=/home/builder')
  OWNED_PATHS=('1000:1000 ./workspace' '1000:1000 ./home/builder')
}

# Extracts Debian package PKG (apt-get download, no install) into DIR and prints DIR.
extract_deb() {
  local pkg=$1 dir=$2
  mkdir -p "$dir"
  # A fresh machine may have no package lists yet: update them once and try again.
  (cd "$dir" && apt-get download "$pkg" >&2 2>/dev/null) \
    || { apt-get update -q >&2 && (cd "$dir" && apt-get download "$pkg" >&2 2>/dev/null); } \
    || die "cannot download the Debian package $pkg"
  dpkg-deb -x "$dir"/"${pkg}"_*.deb "$dir/x"
  printf '%s\n' "$dir/x"
}

# Copies each shared library that the binaries in "$@" (paths inside DIR) link, as ldd on this
# machine resolves them, into the same path under DIR, with the dynamic loader.
copy_libraries() {
  local dir=$1 lib
  shift
  while IFS= read -r lib; do
    [[ -e $dir$lib ]] && continue
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done < <(for bin in "$@"; do ldd "$dir$bin" 2>/dev/null; done | grep -oE '/[^ ]+\.so[^ ]*' | sort -u)
}

# The busybox userland plus Debian's git (git, git-daemon, the http transport) and OpenSSH's
# client and server, with the libraries they link: the checkout image of the tests (KILN_GIT_IMAGE) and the
# git server they run. Only the few git-core programs a fetch and a daemon need are kept.
rootfs_git() {
  local dir=$1 git ssh sshd core=usr/lib/git-core
  rootfs_busybox "$dir"
  git=$(extract_deb git "$WORK/git-deb")
  ssh=$(extract_deb openssh-client "$WORK/ssh-deb")
  mkdir -p "$dir/$core" "$dir/usr/share/git-core"
  install -m 755 "$git/usr/bin/git" "$dir/usr/bin/git"
  install -m 755 "$git/$core/git-daemon" "$git/$core/git-remote-http" "$dir/$core/"
  local link
  for link in git git-upload-pack git-receive-pack git-upload-archive; do ln -sf /usr/bin/git "$dir/$core/$link"; done
  ln -sf git-remote-http "$dir/$core/git-remote-https"
  cp -a "$git/usr/share/git-core/templates" "$dir/usr/share/git-core/"
  rm -rf "$dir/usr/share/git-core/templates/hooks"
  install -m 755 "$ssh/usr/bin/ssh" "$dir/usr/bin/ssh"
  # sshd, for the tests' ssh git server: git-upload-pack must be on its sessions' PATH.
  sshd=$(extract_deb openssh-server "$WORK/sshd-deb")
  install -m 755 "$sshd/usr/sbin/sshd" "$dir/usr/sbin/sshd"
  ln -sf git "$dir/usr/bin/git-upload-pack"
  mkdir -p "$dir/run/sshd" "$dir/etc/ssh" "$dir/var/empty"
  printf '%s\n' 'sshd:x:100:65534::/run/sshd:/bin/false' >>"$dir/etc/passwd"
  copy_libraries "$dir" /usr/bin/git "/$core/git-daemon" "/$core/git-remote-http" /usr/bin/ssh /usr/sbin/sshd
  IMPORT_CHANGES+=('ENV GIT_EXEC_PATH=/usr/lib/git-core')
}

# The busybox userland plus this machine's PostgreSQL server and client programs (Debian's
# /usr/lib/postgresql/<version>) with their share directory and the libraries they link: the
# database of the `services:` tests. Its entrypoint initialises a cluster in /tmp/pgdata (a tmpfs
# under Kiln's read-only root) and runs postgres as the unprivileged user `postgres`, with trust
# auth for every address: it is reachable only on its execution's own network.
rootfs_postgres() {
  local dir=$1 pgbin version share prog
  rootfs_busybox "$dir"
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $pgbin && -x $pgbin/postgres ]] || die "no PostgreSQL server under /usr/lib/postgresql (apt-get install -y postgresql)"
  version=$(basename "$(dirname "$pgbin")")
  share=/usr/share/postgresql/$version
  mkdir -p "$dir$pgbin" "$dir/usr/lib/postgresql/$version/lib" "$dir/usr/share/postgresql" "$dir/usr/share/zoneinfo/Etc" "$dir/usr/local/bin"
  local progs=(postgres initdb pg_ctl pg_isready psql) bins=()
  for prog in "${progs[@]}"; do
    install -m 755 "$pgbin/$prog" "$dir$pgbin/$prog"
    ln -sf "$pgbin/$prog" "$dir/usr/bin/$prog"
    bins+=("$pgbin/$prog")
  done
  # The languages and encodings a cluster loads; JIT (llvmjit, ~100 MB) stays out.
  find "/usr/lib/postgresql/$version/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp {} "$dir/usr/lib/postgresql/$version/lib/" \;
  cp -r "$share" "$dir$share"
  rm -rf "$dir$share/man"
  cp /usr/share/zoneinfo/UTC "$dir/usr/share/zoneinfo/UTC"
  cp /usr/share/zoneinfo/UTC "$dir/usr/share/zoneinfo/Etc/UTC"
  local libs
  mapfile -t libs < <(cd "$dir" && find "usr/lib/postgresql/$version/lib" -name '*.so' -printf '/%p\n')
  copy_libraries "$dir" "${bins[@]}" "${libs[@]}"
  printf '%s\n' 'postgres:x:70:70:postgres:/tmp:/bin/sh' >>"$dir/etc/passwd"
  printf '%s\n' 'postgres:x:70:' >>"$dir/etc/group"
  printf '%s\n' \
    '#!/bin/sh' \
    '# initdb then postgres, as the image'"'"'s user; arguments go to postgres (`-c fsync=off`).' \
    '# The image has no CMD (`CMD []`), so a service without `command` runs postgres as it is.' \
    'set -e' \
    ': "${PGDATA:=/tmp/pgdata}"' \
    'if [ ! -s "$PGDATA/PG_VERSION" ]; then' \
    '  initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --auth=trust --encoding=UTF8 --no-locale --no-sync >/dev/null' \
    '  printf "%s\n" "host all all 0.0.0.0/0 trust" "host all all ::/0 trust" >>"$PGDATA/pg_hba.conf"' \
    '  if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then' \
    '    echo "CREATE DATABASE \"$POSTGRES_DB\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null' \
    '  fi' \
    'fi' \
    'exec postgres -D "$PGDATA" -c listen_addresses="*" -c unix_socket_directories=/tmp "$@"' \
    >"$dir/usr/local/bin/postgres-entrypoint"
  chmod 755 "$dir/usr/local/bin/postgres-entrypoint"
  IMPORT_CHANGES+=(
    'USER postgres'
    'ENV PGDATA=/tmp/pgdata TZ=UTC LANG=C'
    'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]'
    # No `sh` from the busybox image's CMD: a service without `command` runs postgres plainly.
    'CMD []'
  )
}

# The busybox userland plus the Go toolchain installed on this machine (Debian's golang-go: the
# go command, its tools, the standard library's sources), with the libraries they link: the
# image of the Go builds (GO_TEST_IMAGE, test/fixtures/go). GOROOT keeps the machine's path,
# where the go command looks for it. Left out: the precompiled standard library
# (pkg/linux_amd64, 240 MB), so that, as with Go >= 1.20, a cold build compiles what it uses
# into GOCACHE and a warm cache saves that work; and GOROOT's test, api and misc trees. No git:
# modules come from a GOPROXY (a file:// one in the tests), and GOPROXY=off until a job sets one.
rootfs_go() {
  local dir=$1 go goroot src tool
  rootfs_busybox "$dir"
  go=$(command -v go) || die "the go command is not installed: apt-get install -y golang-go"
  goroot=$("$go" env GOROOT)
  src=$(readlink -f "$goroot/src")
  [[ -f $src/runtime/runtime.go ]] || die "GOROOT $goroot has no standard library sources (golang-go's -src package)"
  mkdir -p "$dir$goroot/pkg"
  cp -a "$goroot/bin" "$goroot/VERSION" "$dir$goroot/"
  # Debian links pkg/include and src into /usr/share/go-*: the image holds the files themselves.
  cp -a "$goroot/pkg/tool" "$dir$goroot/pkg/"
  cp -a "$(readlink -f "$goroot/pkg/include")" "$dir$goroot/pkg/include"
  cp -a "$src" "$dir$goroot/src"
  ln -s "$goroot/bin/go" "$dir/usr/bin/go"
  ln -s "$goroot/bin/gofmt" "$dir/usr/bin/gofmt"
  local bins=("$goroot/bin/go" "$goroot/bin/gofmt")
  for tool in "$dir$goroot"/pkg/tool/*/*; do bins+=("${tool#"$dir"}"); done
  copy_libraries "$dir" "${bins[@]}"
  IMPORT_CHANGES+=(
    'ENV CGO_ENABLED=0'
    'ENV GOFLAGS=-mod=mod'
    'ENV GOPROXY=off'
    'ENV HOME=/root'
    'ENV GOPATH=/root/go'
    'ENV GOCACHE=/root/.cache/go-build'
  )
}

# Builds one image unless the tag already holds the same content.
build_image() {
  local name=$1 tag=$2
  local dir="$WORK/$name/rootfs" tarball="$WORK/$name/rootfs.tar"
  mkdir -p "$dir"
  IMPORT_CHANGES=()
  OWNED_PATHS=()
  "rootfs_$name" "$dir"
  local owned ids excludes=()
  for owned in "${OWNED_PATHS[@]}"; do excludes+=(--exclude="${owned#* }"); done
  tar --create --file="$tarball" --directory="$dir" "${excludes[@]}" \
    --sort=name --mtime="$EPOCH" --owner=0 --group=0 --numeric-owner .
  for owned in "${OWNED_PATHS[@]}"; do
    ids=${owned%% *}
    tar --append --file="$tarball" --directory="$dir" \
      --sort=name --mtime="$EPOCH" --owner="${ids%%:*}" --group="${ids#*:}" --numeric-owner "${owned#* }"
  done
  local digest current
  digest=$(sha256sum "$tarball" | cut -d' ' -f1)
  current=$("$DOCKER" image inspect --format "{{ index .Config.Labels \"$DIGEST_LABEL\" }}" "$tag" 2>/dev/null || true)
  if [[ $current == "$digest" ]]; then
    log "$tag is up to date"
    return
  fi
  local args=() change
  for change in "${IMPORT_CHANGES[@]}"; do args+=(--change "$change"); done
  args+=(--change "LABEL $DIGEST_LABEL=$digest")
  "$DOCKER" import "${args[@]}" "$tarball" "$tag" >/dev/null
  # Smoke test: the image starts and its shell runs, with no network.
  local out
  out=$("$DOCKER" run --rm --network none --entrypoint sh "$tag" -c 'echo ok') \
    || die "$tag was imported but does not run"
  [[ $out == ok ]] || die "$tag smoke test printed '$out' instead of 'ok'"
  log "built $tag ($digest)"
}

main() {
  "$DOCKER" info >/dev/null 2>&1 \
    || die "the Docker engine is not reachable (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})"
  local entry
  for entry in "${TEST_IMAGES[@]}"; do
    # shellcheck disable=SC2086 # "name tag" splits on purpose
    build_image $entry
  done
}

main "$@"
