#!/usr/bin/env bash
# Section 3 of BENCHMARKS.md: deployable size. Every function built the way
# SAM builds it (cargo lambda build --release, zig as the linker), and the
# zip Lambda would receive; then the release-profile settings one at a time on
# checkout-api. Writes the Markdown section to $1.
#
# Needs bench/peers/install.sh to have run (cargo-lambda and ziglang in
# bench/.venv). Builds go to $SIZE_TARGET_DIR (default: $TARGET_DIR), one
# directory per profile, so a second run only re-zips: nothing is rebuilt
# unless the sources, the lock file or the profile changed. The build times
# shown are those of the last run that compiled something, kept in
# $SIZE_TARGET_DIR/bench/size/.
# Cold, on 2 shared cores: about 45 min for the 18 release builds, then 20 to
# 40 min per ablation row (each profile compiles every dependency again,
# all eight SDK clients included, since every function depends on tenancy).
# Warm (nothing to rebuild): about 15 s. zig is found as `python3 -m
# ziglang`, through bench/.venv/bin on PATH.
#   BENCH_QUICK=1     builds nothing: checks the tools, prints the commands
#   SIZE_ABLATION="size-default size-abort"   only these profile variants
#   SIZE_BUILD=0      builds nothing: writes the section from the builds there are
set -euo pipefail
out="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export PATH="$root/bench/.venv/bin:$PATH"
target="${SIZE_TARGET_DIR:-${TARGET_DIR:-$root/target}}"
export CARGO_TARGET_DIR="$target"
lambda="$target/lambda-size"
state="$target/bench/size"
mkdir -p "$state" "$(dirname "$out")"

triple=x86_64-unknown-linux-gnu
cpu=haswell # what cargo lambda build --release passes for x86_64 (neoverse-n1 for arm64)
ablated=checkout-api
limit=5000000 # the target: 5 MB zipped
functions=()
for dir in functions/*/; do functions+=("$(basename "$dir")"); done

# Profile variants, in the order they are built when not already cached
# (the most telling first): name opt-level lto codegen-units panic strip.
variants=(
  "size-abort s fat 1 abort symbols"
  "size-default 3 false 16 unwind none"
  "size-z z fat 1 unwind symbols"
  "size-s s false 16 unwind symbols"
  "size-fat s fat 16 unwind symbols"
  "size-thin s thin 16 unwind symbols"
)
wanted="${SIZE_ABLATION:-size-abort size-default size-z size-s size-fat size-thin}"

mib() { awk -v b="$1" 'BEGIN { v = b / 1048576; d = v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3; printf "%.*f MiB", d, v }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f %%", (a - b) * 100 / b }'; }
size_of() { if [ -f "$1" ]; then stat -c %s "$1"; else echo ""; fi; }
# Deflate at level 6 into a zip holding one `bootstrap`, as cargo lambda does.
zip_size() {
  python3 - "$1" <<'EOF'
import io, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
    z.write(sys.argv[1], "bootstrap")
print(len(buf.getvalue()))
EOF
}
# Seconds and crates compiled by the last build of $1 that compiled anything.
build_time() {
  if [ -f "$state/$1.time" ]; then
    read -r secs crates <"$state/$1.time"
    echo "$secs s ($crates crates)"
  else
    echo "n/a"
  fi
}

# run_build NAME [cargo lambda build arguments...]: the build, timed, logged.
run_build() {
  local name="$1"
  shift
  local log="$state/$name.log" started
  echo "-- cargo lambda build $*" >&2
  started=$(date +%s)
  if ! nice -n 10 cargo lambda build --locked --x86-64 --output-format zip \
    --lambda-dir "$lambda/$name" "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    return 1
  fi
  local secs=$(($(date +%s) - started)) crates
  crates=$(grep -c '^ *Compiling ' "$log" || true)
  if [ "$crates" -gt 0 ]; then echo "$secs $crates" >"$state/$name.time"; fi
}

profile_args() { # name opt lto cgu panic strip
  local p="$1"
  echo --profile "$p" \
    --config "profile.$p.inherits=\"release\"" --config "profile.$p.opt-level=$(quote "$2")" \
    --config "profile.$p.lto=$(quote "$3")" --config "profile.$p.codegen-units=$4" \
    --config "profile.$p.panic=\"$5\"" --config "profile.$p.strip=\"$6\"" \
    --config "build.rustflags=[\"-C\",\"target-cpu=$cpu\"]"
}
quote() { case "$1" in [0-9] | false | true) echo "$1" ;; *) echo "\"$1\"" ;; esac; }

release_cmd="cargo lambda build --release --x86-64 --output-format zip"
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  {
    echo "## 3. Deployable size"
    echo
    echo "Skipped in a quick run: the builds take tens of minutes cold."
    echo "Tools found: $(cargo lambda --version), zig $(python3 -m ziglang version)."
    echo "A full run builds every function with \`$release_cmd\`."
  } >"$out"
  exit 0
fi

# 1. Every function, with the committed [profile.release].
bins=()
for f in "${functions[@]}"; do bins+=(--bin "$f"); done
if [ "${SIZE_BUILD:-1}" = 0 ]; then wanted=""; else run_build release --release "${bins[@]}"; fi

# 2. The release-profile settings one at a time, on one function.
for v in "${variants[@]}"; do
  read -r name opt lto cgu panic strip <<<"$v"
  case " $wanted " in *" $name "*) ;; *) continue ;; esac
  # word splitting of profile_args is intended: no argument has a space
  # shellcheck disable=SC2046
  run_build "$name" --bin "$ablated" $(profile_args "$name" "$opt" "$lto" "$cgu" "$panic" "$strip")
done

bin_path() { echo "$target/$triple/$([ "$1" = release ] && echo release || echo "$1")/$2"; }
zip_path() { echo "$lambda/$1/$2/bootstrap.zip"; }

# ---- the section ----
release_profile="$(sed -n '/^\[profile.release\]/,/^$/p' Cargo.toml | grep -v '^#' | grep -v '^$' | sed 's/^/    /')"
{
  echo "## 3. Deployable size"
  echo
  echo "What Lambda receives for each function: the zip that \`cargo lambda build"
  echo "--release --output-format zip\` writes (cargo-lambda $(cargo lambda --version | cut -d' ' -f2),"
  echo "zig $(python3 -m ziglang version) from PyPI as the linker, glibc target). Target: under 5 MB"
  echo "zipped (5,000,000 B = 4.77 MiB). Sizes in MiB (2^20 B)."
  echo
  echo "**x86_64 figures.** infra/template.yaml deploys every function as arm64"
  echo "(Graviton); this machine cannot install the aarch64 standard library, so"
  echo "these are x86_64 builds (\`--x86-64\`, and \`-C target-cpu=$cpu\`, which"
  echo "cargo lambda adds for x86_64 as it adds \`neoverse-n1\` for arm64). The arm64"
  echo "zips were not measured; expect them close but not equal: AArch64 code is"
  echo "fixed-width and usually a little larger than x86_64's."
  echo
  echo "### Every function, with the committed release profile"
  echo
  echo "\`\`\`"
  echo "$release_cmd $(printf -- '--bin %s ' "${functions[@]:0:2}")... (all ${#functions[@]})"
  echo "\`\`\`"
  echo
  echo "with, in the root Cargo.toml:"
  echo
  echo "$release_profile"
  echo
  echo "| Function | Binary | Zip | Under 5 MB? |"
  echo "| --- | ---: | ---: | --- |"
  largest=0 largest_name=""
  for f in "${functions[@]}"; do
    b=$(size_of "$(bin_path release "$f")")
    z=$(size_of "$(zip_path release "$f")")
    if [ -z "$z" ]; then
      echo "| $f | not built | | |"
      continue
    fi
    if [ "$z" -gt "$largest" ]; then largest=$z largest_name=$f; fi
    if [ "$z" -lt "$limit" ]; then
      verdict="yes, $(mib $((limit - z))) to spare"
    else
      verdict="**no**, over by $(mib $((z - limit)))"
    fi
    echo "| $f | $(mib "$b") | $(mib "$z") | $verdict |"
  done
  echo
  echo "Build of all ${#functions[@]}: $(build_time release). Largest zip: $largest_name, $(mib "$largest")."
  echo
  over=()
  for f in "${functions[@]}"; do
    z=$(size_of "$(zip_path release "$f")")
    if [ -n "$z" ] && [ "$z" -ge "$limit" ]; then over+=("$f by $(mib $((z - limit))) ($(pct "$z" "$limit"))"); fi
  done
  if [ "${#over[@]}" -eq 0 ]; then
    echo "**Target met** by every function."
  else
    echo "**Target missed** by ${#over[@]} of ${#functions[@]}: $(printf '%s; ' "${over[@]}" | sed 's/; $//')."
  fi
  # apply-subscription reads the tenant table and Stripe; release-subdomain
  # the tenant table only: the pair shows what the Stripe client costs.
  with=$(size_of "$(zip_path release apply-subscription)")
  without=$(size_of "$(zip_path release release-subdomain)")
  if [ -n "$with" ] && [ -n "$without" ]; then
    echo "What the Stripe client costs: apply-subscription and release-subdomain call"
    echo "the same AWS client (DynamoDB) and differ by the Stripe reads (a"
    echo "subscription, re-read for every lifecycle event); their zips differ by"
    echo "$(mib $((with - without))). checkout-api, apply-subscription, converge-tenant and"
    echo "clean-up-execution call Stripe (async-stripe's request and answer types, sent"
    echo "by shared/src/adapters/stripe/transport.rs); every other function stays near"
    echo "the floor set by aws-config, one or two SDK clients, rustls with aws-lc and"
    echo "the Lambda runtime. Until commit 1029958 they were sent by async-stripe's own"
    echo "client, which reads every error into a model holding whole PaymentIntents,"
    echo "SetupIntents, PaymentMethods and sources: the same four zips were then 5.05,"
    echo "5.45, 5.86 and 5.83 MiB, all over the target."
  fi
  echo

  echo "### What each release-profile setting buys ($ablated)"
  echo
  echo "Cargo's default release profile first, then one setting changed per row."
  echo "Each row is its own profile (own directory under the target dir), built"
  echo "with the same command as the release build plus"
  echo
  echo "\`\`\`"
  echo "cargo lambda build --x86-64 --output-format zip --bin $ablated --profile NAME \\"
  echo "  --config 'profile.NAME.inherits=\"release\"' --config 'profile.NAME.opt-level=...' \\"
  echo "  --config 'profile.NAME.lto=...' --config 'profile.NAME.codegen-units=...' \\"
  echo "  --config 'profile.NAME.panic=\"...\"' --config 'profile.NAME.strip=\"...\"' \\"
  echo "  --config 'build.rustflags=[\"-C\",\"target-cpu=$cpu\"]'"
  echo "\`\`\`"
  echo
  echo "Build times are cold (every crate compiled for that profile), on 2 cores"
  echo "shared with other builds: read them as rough."
  echo
  echo "| # | Step | opt-level | lto | codegen-units | panic | strip | Binary | Zip | Zip change | Build |"
  echo "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"
  declare -A zips=()
  row() { # number label opt lto cgu panic strip binary zip build-time compared-with
    zips[$1]="$9"
    local delta=""
    local base
    for base in ${11}; do # the first of the rows named that was built
      if [ -n "$9" ] && [ -n "${zips[$base]:-}" ]; then
        delta="$(pct "$9" "${zips[$base]}") vs $base"
        break
      fi
    done
    if [ -n "$9" ]; then
      echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 | $(mib "$8") | $(mib "$9") | $delta | ${10} |"
    else
      echo "| $1 | $2 | $3 | $4 | $5 | $6 | $7 | not built | | | |"
    fi
  }
  variant_row() { # number label variant compared-with
    local v n opt lto cgu panic strip
    for v in "${variants[@]}"; do
      read -r n opt lto cgu panic strip <<<"$v"
      if [ "$n" = "$3" ]; then
        row "$1" "$2" "$opt" "$lto" "$cgu" "$panic" "$strip" \
          "$(size_of "$(bin_path "$n" $ablated)")" "$(size_of "$(zip_path "$n" $ablated)")" \
          "$(build_time "$n")" "$4"
      fi
    done
  }
  d_bin=$(size_of "$(bin_path size-default $ablated)")
  variant_row 1 "Cargo's release defaults" size-default ""
  s_bin="" s_zip=""
  if [ -n "$d_bin" ]; then
    strip --strip-all -o "$state/size-default.stripped" "$(bin_path size-default $ablated)"
    s_bin=$(size_of "$state/size-default.stripped")
    s_zip=$(zip_size "$state/size-default.stripped")
  fi
  row 2 "+ strip (1 through \`strip --strip-all\`)" 3 false 16 unwind symbols "$s_bin" "$s_zip" "-" 1
  variant_row 3 "+ opt-level s" size-s "2 1"
  variant_row 4 "+ lto fat" size-fat "3 2 1"
  r_bin=$(size_of "$(bin_path release $ablated)")
  r_zip=$(size_of "$(zip_path release $ablated)")
  row 5 "+ codegen-units 1: **the committed profile**" s "fat (true)" 1 unwind symbols "$r_bin" "$r_zip" "with the other 17" "4 3 2 1"
  variant_row 6 "4 with lto thin" size-thin 4
  variant_row 7 "5 with opt-level z" size-z 5
  variant_row 8 "5 with panic abort" size-abort 5
  a_zip="${zips[8]}"
  echo
  echo "Rows 6 to 8 are alternatives to the row they name, not further steps. Row 2"
  echo "strips row 1's binary with binutils, which removes what \`strip = true\` has"
  echo "the linker leave out (the symbol tables), and zips it with Python's zipfile (deflate,"
  echo "level 6: within 0.1 % of cargo lambda's own zip), to spare a build."
  echo "Rows marked *not built* have no build in the size build directory yet"
  echo "(\`SIZE_TARGET_DIR\`, else \`TARGET_DIR\`, else \`target/\`; this run's"
  echo "SIZE_ABLATION was \`${SIZE_ABLATION:-all}\`): \`SIZE_ABLATION=\"size-s size-fat size-thin size-z size-abort\" make bench\`"
  echo "builds them, 20 to 40 min each on 2 cores, and later runs reuse them."
  echo
} >"$out"

# Rough attribution: symbol sizes of the unstripped Cargo-defaults build, by
# the crate their path starts with (nm and the symbols; cargo-bloat does the same).
attribution() {
  python3 - "$1" <<'PY'
import re, subprocess, sys
from collections import Counter
out = subprocess.run(["nm", "-S", "-C", "--defined-only", sys.argv[1]],
                     capture_output=True, text=True, check=True).stdout
STD = {"core", "alloc", "std", "hashbrown", "std_detect", "rustc_demangle", "gimli",
       "addr2line", "miniz_oxide", "object", "panic_unwind"}
KEYWORDS = {"mut", "const", "dyn", "impl", "fn", "unsafe", "extern", "as", "for", "where"}
totals = Counter()
for line in out.splitlines():
    parts = line.split(" ", 3)
    if len(parts) < 4 or not re.fullmatch(r"[0-9a-f]+", parts[1]):
        continue
    size, name = int(parts[1], 16), parts[3]
    if re.match(r"aws_lc_\d+_\d+_\d+_", name):
        crate = "aws-lc-sys (C)"
    elif "::" in name:
        # The first crate named in the path, generic arguments included, that
        # is not std: drop_in_place<stripe_shared::X> counts for stripe_shared.
        crates = [c for c in re.findall(r"(?:^|[<\s&(\[,*;])([a-z_][a-z0-9_]*)::", name) if c not in KEYWORDS]
        crate = next((c for c in crates if c not in STD), "std, core, alloc" if crates else "(unattributed)")
    else:
        crate = "(no crate path: C, runtime)"
    totals[crate] += size
total = sum(totals.values())
print("| Crate | Symbol bytes | Share |")
print("| --- | ---: | ---: |")
for crate, size in totals.most_common(15):
    print(f"| {crate} | {size / 1048576:.2f} MiB | {size * 100 / total:.1f} % |")
print(f"| all symbols | {total / 1048576:.2f} MiB | 100 % |")
PY
}

{
  if [ -n "$d_bin" ]; then
    echo "### What bounds the size"
    echo
    echo "Symbol sizes in the unstripped Cargo-defaults build of $ablated (first row"
    echo "above), summed by crate (\`nm -S -C\`; a generic instance counts for the"
    echo "first non-std crate it names, so \`drop_in_place<stripe_shared::X>\` is stripe's)."
    echo "LTO in the committed profile shrinks the lines unevenly; data without a"
    echo "symbol (string and byte literals) is not counted."
    echo
    attribution "$(bin_path size-default $ablated)"
    echo
  fi
  echo "### Dependency features"
  echo
  echo "From \`cargo tree -e features -p $ablated\`: the AWS SDK crates and aws-config"
  echo "already have default features off (\`default-https-client\`, \`rt-tokio\`,"
  echo "\`behavior-version-latest\` only), so there is no hyper 0.14 client, no SSO and"
  echo "no credential-process provider. Nothing sizeable is left to turn off without"
  echo "changing behaviour, so [workspace.dependencies] is unchanged:"
  echo
  echo "- One TLS stack: rustls 0.23 with aws-lc-rs, shared by the AWS SDK and"
  echo "  the Stripe client (hyper-rustls with \`aws-lc-rs\`). No ring, no OpenSSL, no native-tls."
  echo "- Two root stores: the AWS SDK reads the system's (rustls-native-certs, a"
  echo "  few KiB of code); the Stripe client embeds Mozilla's (webpki-roots 1.0.10: 120"
  echo "  roots, 54,223 B of DER, which deflate barely shrinks), as async-stripe's"
  echo "  own client does: Stripe's certificates are trusted the same way everywhere."
  echo "- \`h2\` (HTTP/2) is compiled in by the SDK's default client; no feature"
  echo "  turns it off. The Stripe client speaks HTTP/1.1 only."
  echo "- \`regex-automata\` comes with tracing-subscriber's \`env-filter\`, which"
  echo "  lambda_runtime's \`tracing\` feature enables as well and which \`RUST_LOG\`"
  echo "  directives need; \`filter::Targets\` instead would change what \`RUST_LOG\`"
  echo "  accepts."
  echo "- \`encoding_rs\` is an unconditional dependency of lambda_http: the two HTTP"
  echo "  functions carry it."
  echo "- Duplicates are small: base64 0.21 (serde_dynamo), 0.22 and 0.23"
  echo "  (hyper-util); sha2, hmac and digest 0.10 and 0.11 (aws-sigv4 has moved on)."
  echo
  echo "### Decisions"
  echo
  z_zip="${zips[7]:-}"
  echo "- **panic = \"unwind\", written out.** \`cargo lambda build --release\` fills"
  echo "  the release settings a manifest leaves unset with its own (strip, thin LTO,"
  echo "  one codegen unit and **panic = \"abort\"**), so until the profile said"
  echo "  otherwise the deployed functions were built with abort."
  if [ -n "$r_zip" ] && [ -n "$a_zip" ]; then
    echo "  Abort would save $(mib $((r_zip - a_zip))) ($(pct "$a_zip" "$r_zip")) of $ablated's zip,"
    if [ "$a_zip" -lt "$limit" ]; then
      echo "  enough to bring it under the target."
    else
      echo "  not enough to bring it under the target ($(mib "$a_zip"))."
    fi
  else
    echo "  (What abort saves is not measured in this run: row 8 was not built.)"
  fi
  echo "  Unwind is kept: lambda_runtime catches a panic in the handler and reports"
  echo "  it as that invocation's error, and the execution environment stays warm;"
  echo "  with abort the process dies (Runtime.ExitError) and the next request there"
  echo "  pays a cold start. A smaller zip is not worth turning a bug in one request"
  echo "  into a crash of the environment serving it$([ -n "$a_zip" ] && [ "$a_zip" -ge "$limit" ] && echo ", least of all when it does not meet the target either")."
  if [ -n "$z_zip" ] && [ -n "$r_zip" ]; then
    echo "- **opt-level = \"s\"**: \"z\" gives $(pct "$z_zip" "$r_zip") on the committed profile (row 7)."
  else
    echo "- **opt-level = \"s\"**: \"z\" on the committed profile (row 7) was not measured in this run."
  fi
  echo "- **lto = true (fat), codegen-units = 1, strip = true**: what each bought is in"
  echo "  the table above. The price is build time: one LLVM module per binary,"
  echo "  optimised on one core."
  if [ -n "${with:-}" ] && [ -n "${without:-}" ] && [ "$largest" -ge "$limit" ]; then
    echo "- **What would meet the target.** The functions over it are the ones that"
    echo "  call Stripe, which costs $(mib $((with - without))) zipped (the"
    echo "  apply-subscription / release-subdomain pair above), against a gap of"
    echo "  $(mib $((largest - limit))) ($(pct "$largest" "$limit")) for the largest."
    if [ -n "$a_zip" ] && [ -n "$z_zip" ]; then
      echo "  Abort and z save $(mib $((r_zip - a_zip))) and $(mib $((r_zip - z_zip))) on $ablated (rows 7, 8)."
    else
      echo "  Whether abort and z (rows 7, 8, not all measured here) would close it is open;"
    fi
    echo "  what is left of the Stripe cost is async-stripe's generated Checkout Session and"
  else
    echo "- **Room to spare.** The largest zips are the functions that call Stripe; what"
    echo "  they pay for it is mostly async-stripe's generated Checkout Session and"
  fi
  echo "  billing portal session types, read whole where only \`id\` and \`url\` are"
  echo "  used. Reading those two fields from the answer would shrink them further; the"
  echo "  typed requests would stay async-stripe's."
  echo
} >>"$out"
echo "wrote $out" >&2
