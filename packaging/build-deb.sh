#!/usr/bin/env bash
# Builds the jobq Debian package from this checkout:
#
#   packaging/build-deb.sh            # -> build/jobq_<version>_<arch>.deb
#
# Environment:
#   VERSION   package version (default: from git: the last v* tag as
#             1.2.3[+N.gHASH], else 0.0~gitYYYYMMDD.HASH; "+dirty" for a
#             modified tree). Required outside a git checkout.
#   OUT_DIR   where the .deb goes (default: build/ in the checkout)
#   GOARCH    target architecture (default: this machine's)
#
# Needs go and dpkg-deb; no root. The programs are built with
# CGO_ENABLED=0 -trimpath and the version and commit linked in (jobq
# version, jobqd --version); the man pages and completion scripts are
# generated from the commands (cmd/jobq-gendocs).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
export CGO_ENABLED=0

in_git=false
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	in_git=true
fi

dirty=""
commit=unknown
if $in_git; then
	commit=$(git rev-parse HEAD)
	if ! git diff --quiet HEAD -- 2>/dev/null; then
		dirty=yes
		commit="$commit-dirty"
	fi
fi

if [ -z "${VERSION:-}" ]; then
	if ! $in_git; then
		echo "build-deb.sh: not a git checkout: set VERSION (e.g. VERSION=1.2.3 $0)" >&2
		exit 1
	fi
	if desc=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.3 -> 1.2.3; v1.2.3-4-gabc1234 -> 1.2.3+4.gabc1234;
		# v1.2.3-rc1 -> 1.2.3~rc1 (sorts before 1.2.3)
		VERSION=$(printf '%s' "${desc#v}" | sed -E -e 's/-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/' -e 's/-/~/g')
	else
		VERSION="0.0~git$(TZ=UTC git log -1 --date=format-local:%Y%m%d --format=%cd).$(git rev-parse --short=12 HEAD)"
	fi
	if [ -n "$dirty" ]; then
		VERSION="$VERSION+dirty"
	fi
fi
if ! printf '%s' "$VERSION" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
	echo "build-deb.sh: VERSION '$VERSION' is not a Debian version (digits first, then letters, digits, . + ~)" >&2
	exit 1
fi

goarch=${GOARCH:-$(go env GOARCH)}
case "$goarch" in
amd64 | arm64 | riscv64 | ppc64le | s390x) arch=$goarch ;;
386) arch=i386 ;;
arm) arch=armhf ;;
*)
	echo "build-deb.sh: no Debian architecture for GOARCH=$goarch" >&2
	exit 1
	;;
esac
export GOARCH=$goarch

# Reproducible dates: the commit's time, else now.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	if $in_git; then
		SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
	else
		SOURCE_DATE_EPOCH=$(date +%s)
	fi
fi
export SOURCE_DATE_EPOCH

out_dir=${OUT_DIR:-$root/build}
mkdir -p "$out_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg

echo "building jobq $VERSION ($arch, commit $commit)"

ldflags="-s -w -X github.com/jobq-dev/jobq/internal/buildinfo.version=$VERSION -X github.com/jobq-dev/jobq/internal/buildinfo.commit=$commit"
install -d "$pkg/usr/sbin" "$pkg/usr/bin"
go build -trimpath -ldflags "$ldflags" -o "$work/bin/" ./cmd/jobqd ./cmd/jobq
install -m 0755 "$work/bin/jobqd" "$pkg/usr/sbin/jobqd"
install -m 0755 "$work/bin/jobq" "$pkg/usr/bin/jobq"

# Man pages and completion, from the same commands as --help. The
# generator runs on this machine, whatever GOARCH the package is for.
GOARCH=$(go env GOHOSTARCH) go run -trimpath -ldflags "$ldflags" ./cmd/jobq-gendocs \
	--out "$work/docs" --version "$VERSION" --date "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"
install -d "$pkg/usr/share/man/man8"
for page in "$work"/docs/man/man8/*.8; do
	gzip -9n <"$page" >"$pkg/usr/share/man/man8/$(basename "$page").gz"
done
install -D -m 0644 "$work/docs/completion/bash/jobq" "$pkg/usr/share/bash-completion/completions/jobq"
install -D -m 0644 "$work/docs/completion/bash/jobqd" "$pkg/usr/share/bash-completion/completions/jobqd"
install -D -m 0644 "$work/docs/completion/zsh/_jobq" "$pkg/usr/share/zsh/vendor-completions/_jobq"
install -D -m 0644 "$work/docs/completion/zsh/_jobqd" "$pkg/usr/share/zsh/vendor-completions/_jobqd"

install -D -m 0644 packaging/jobqd.service "$pkg/lib/systemd/system/jobqd.service"
install -D -m 0644 packaging/jobqd.conf "$pkg/etc/jobq/jobqd.conf"
install -D -m 0644 packaging/debian/copyright "$pkg/usr/share/doc/jobq/copyright"
install -m 0644 README.md "$pkg/usr/share/doc/jobq/README.md"
install -m 0644 docs/operations.md "$pkg/usr/share/doc/jobq/operations.md"

install -d "$pkg/DEBIAN"
install -m 0644 packaging/debian/conffiles "$pkg/DEBIAN/conffiles"
for script in postinst prerm postrm; do
	install -m 0755 "packaging/debian/$script" "$pkg/DEBIAN/$script"
done
(cd "$pkg" && find usr lib -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$pkg/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	packaging/debian/control.in >"$pkg/DEBIAN/control"

# Directories 0755, files as installed above, everything root:root.
find "$pkg" -type d -exec chmod 0755 {} +
deb="$out_dir/jobq_${VERSION}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
