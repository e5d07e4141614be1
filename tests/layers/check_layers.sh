#!/bin/bash
# check_layers.sh — the tree's layers, checked from the source: the order of the README's layer
# table, read from every `#include "..."` line, and vm/'s promise not to touch the host.
#
# 1. Layers, lowest first: util, vm, host, replay, common, logchannel, {primary, backup, migrate}, cmd,
#    daemon. A
#    file may include headers of its own folder and of lower layers only; primary/, backup/, migrate/
#    share a rank and may not include each other. An include of a folder outside the table, a
#    folder-less include, and a top-level folder with C code that the table does not place are
#    errors too, so a new folder has to be given its place.
# 2. vm/ calls nothing that reads the host's clock or does I/O on a descriptor (comments are
#    stripped by the C preprocessor first). The one exception: vm/boot.c and vm/elf.c read the
#    image files the configuration names (open/read/fstat/close), inside machine_create().
# 3. No include circle between files of different concerns, inside a layer as across layers
#    (foo.c, foo.h and foo_internal.h are one concern).
#
# Usage: check_layers.sh SOURCE_DIR. Prints every violation; exit status 1 if there is any.
set -u
src=${1:?usage: check_layers.sh SOURCE_DIR}
layers="util vm host replay common logchannel primary backup migrate cmd daemon"
not_layers="tests bench guest build docs scripts"
bad=0

declare -A rank=([util]=0 [vm]=1 [host]=2 [replay]=3 [common]=4 [logchannel]=5 [primary]=6 [backup]=6 [migrate]=6
	[cmd]=7 [daemon]=8)

violation() {
	echo "layer violation: $*"
	bad=1
}

# Every top-level folder with C code is a layer of the table or a known non-layer.
for d in "$src"/*/; do
	d=$(basename "$d")
	case " $layers $not_layers " in *" $d "*) continue ;; esac
	if compgen -G "$src/$d/*.[ch]" >/dev/null; then
		violation "$d/ holds C code but has no place in the layer table"
	fi
done

# 1. includes (one grep per folder: a fork per file is minutes on a loaded machine)
for dir in $layers; do
	mine=${rank[$dir]}
	compgen -G "$src/$dir/*.[ch]" >/dev/null || continue
	while IFS=: read -r f line inc; do
		[[ $inc =~ include[[:space:]]*\"([^\"]*)\" ]] || continue
		target=${BASH_REMATCH[1]}
		where="$dir/${f##*/}:$line"
		case $target in
		*/*) top=${target%%/*} ;;
		*) violation "$where includes \"$target\" without its folder"; continue ;;
		esac
		[ "$top" = "$dir" ] && continue
		theirs=${rank[$top]:--1}
		if [ "$theirs" -lt 0 ]; then
			violation "$where includes \"$target\": $top/ is not a layer"
		elif [ "$theirs" -ge "$mine" ]; then
			violation "$where ($dir/, layer $mine) includes \"$target\" ($top/, layer $theirs): only lower layers may be included"
		fi
	done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$src/$dir"/*.[ch])
done

# 2. vm/ and the host
clock_calls='clock_gettime|clock_nanosleep|gettimeofday|time|nanosleep|usleep|sleep|timerfd_create|timerfd_settime|alarm|setitimer'
fd_calls='open|openat|creat|fopen|fdopen|read|pread|readv|preadv|fread|fgets|write|pwrite|writev|pwritev|fwrite|close|fclose|fstat|stat|lseek|ioctl|fcntl|poll|ppoll|select|epoll_create1|epoll_wait|socket|connect|accept|accept4|bind|listen|send|sendto|sendmsg|recv|recvfrom|recvmsg|pipe|pipe2|dup|dup2|eventfd|getrandom|fsync|fdatasync'
image_calls='open|read|fopen|fread|fclose|close|fstat'
for f in "$src"/vm/*.[ch]; do
	[ -e "$f" ] || continue
	name=vm/$(basename "$f")
	forbidden="$clock_calls|$fd_calls"
	case $name in vm/boot.c | vm/elf.c)
		forbidden=$(tr '|' '\n' <<<"$forbidden" | grep -vxE "$image_calls" | paste -sd'|') ;;
	esac
	# Comments out (the preprocessor, no includes expanded), then calls that are not member accesses.
	hits=$(gcc -fpreprocessed -E "$f" 2>/dev/null | grep -v '^#' |
		grep -oE "(^|[^>.[:alnum:]_])($forbidden)[[:space:]]*\(" | sed -E 's/^[^[:alpha:]_]*//; s/[[:space:](]*$//' | sort -u)
	for h in $hits; do
		violation "$name calls $h(): vm/ never touches the host's clock or descriptors"
	done
done

# 3. No circle between concerns. A concern is a folder/stem: foo.c, foo.h and the private
#    foo_internal.h are one; a concern depends on another when one of its files includes the other's
#    header and that header has code of its own (foo.c): a header with no .c of its name is an
#    interface (an ops table, shared types) that depends on no file's code. tsort(1) names the loops.
edges=$(for dir in $layers; do
	compgen -G "$src/$dir/*.[ch]" >/dev/null || continue
	grep -HoE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"/]+/[^"]+"' "$src/$dir"/*.[ch] |
	while IFS=: read -r f inc; do
		base=${f##*/}
		from=$dir/${base%.*}
		from=${from%_internal}
		target=${inc#*\"}
		target=${target%\"}
		to=${target%.*}
		to=${to%_internal}
		[ -e "$src/$to.c" ] && [ "$to" != "$from" ] && echo "$from $to"
	done
done | sort -u)
loops=$(tsort <<<"$edges" 2>&1 >/dev/null | sed -nE 's/^tsort: -: input contains a loop:$/--/p; s/^tsort: ([^-][^:]*)$/\1/p' |
	awk '/^--$/ { if (l != "") print l; l = ""; next } { l = l (l == "" ? "" : ", ") $0 } END { if (l != "") print l }' | sort -u)
while IFS= read -r loop; do
	[ -n "$loop" ] && violation "include circle between concerns: $loop"
done <<<"$loops"

if [ $bad -eq 0 ]; then
	echo "layers: util -> vm -> host -> replay -> common -> logchannel -> primary/backup/migrate -> cmd -> daemon hold; no include circle between concerns; vm/ touches no host clock or descriptor"
fi
exit $bad
