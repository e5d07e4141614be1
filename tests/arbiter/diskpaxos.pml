/*
 * diskpaxos.pml — the arbiter's Disk Paxos for one epoch slot (common/arbiter.c, docs/arbiter.md),
 * with crashes, checked exhaustively by spin: never two different decided values.
 *
 * What is modelled, step by step as the C code does it:
 *   - each node owns one block, stored as two copies; a write goes to copy (seq & 1) with seq + 1; a
 *     read takes both copies in two separate atomic steps and keeps the valid one with the higher seq
 *     (both invalid: read again);
 *   - a node may crash before any write (the write is lost), after any write, or during a write,
 *     which leaves that copy garbled; a crashed node restarts from its block on disk;
 *   - a node that decided may run the claim again (a restart after answering) and must decide the
 *     same value;
 *   - ballots are round * N + node, rounds bounded by MAXROUND; a node out of rounds gives up.
 * The per-node decision records of the C code only cache decided values and are not modelled.
 *
 * Deliberately broken variants (the test expects spin to find a violation in each, proving the
 * model can fail): -DBROKEN_SKIP_PHASE2_READ decides right after the phase-2 write;
 * -DBROKEN_SINGLE_COPY keeps one copy per block and reads a garbled block as empty;
 * -DBROKEN_NO_REREAD trusts the valid copy of a half-garbled block without reading it again;
 * -DBROKEN_FORGET_OWN restarts without keeping the node's own accepted ballot and value.
 */
#ifndef N
#define N 2
#endif
#ifndef MAXROUND
#define MAXROUND 2
#endif
#ifndef MAXCRASH
#define MAXCRASH 1
#endif
#define MAXRUNS 1
#define NONE 255

typedef Copy {
	byte seq;
	byte mbal;
	byte bal;
	byte inp;
	bool valid
};
typedef Block {
	Copy c[2]
};

Block disk[N];
byte chosen = NONE;

#ifdef BROKEN_SINGLE_COPY
#define COPY_OF(s) 0
#else
#define COPY_OF(s) ((s) % 2)
#endif

/* Read node j's block into rs/rm/rb/ri, as read_pair() does: both copies in two atomic steps; both
 * valid: the higher seq; one valid: read that one again and use the fresh value; none: start over. */
inline read_block(j)
{
	do
	:: atomic { s0 = disk[j].c[0].seq; m0 = disk[j].c[0].mbal; b0 = disk[j].c[0].bal;
		    i0 = disk[j].c[0].inp; v0 = disk[j].c[0].valid };
#ifdef BROKEN_SINGLE_COPY
		if
		:: v0 -> rs = s0; rm = m0; rb = b0; ri = i0
		:: else -> rs = 0; rm = 0; rb = 0; ri = NONE
		fi;
		break
#else
		atomic { rs = disk[j].c[1].seq; rm = disk[j].c[1].mbal; rb = disk[j].c[1].bal;
			 ri = disk[j].c[1].inp; v1 = disk[j].c[1].valid };
		if
		:: v0 && v1 && s0 > rs -> rs = s0; rm = m0; rb = b0; ri = i0; break
		:: v0 && v1 && s0 <= rs -> break
#ifdef BROKEN_NO_REREAD
		:: v0 && !v1 -> rs = s0; rm = m0; rb = b0; ri = i0; break
		:: !v0 && v1 -> break
#else
		:: v0 && !v1 ->
			atomic { rs = disk[j].c[0].seq; rm = disk[j].c[0].mbal; rb = disk[j].c[0].bal;
				 ri = disk[j].c[0].inp; v0 = disk[j].c[0].valid };
			if
			:: v0 -> break
			:: else
			fi
		:: !v0 && v1 ->
			atomic { rs = disk[j].c[1].seq; rm = disk[j].c[1].mbal; rb = disk[j].c[1].bal;
				 ri = disk[j].c[1].inp; v1 = disk[j].c[1].valid };
			if
			:: v1 -> break
			:: else
			fi
#endif
		:: !v0 && !v1 -> skip /* a write in progress on each copy in turn: read again */
		fi
#endif
	od
}

/* Write our block; the node may die before, during (garbling the copy) or after the write. */
inline write_own()
{
	if
	:: crashes < MAXCRASH -> crashes++; goto restart /* lost write */
	:: crashes < MAXCRASH -> atomic { disk[me].c[COPY_OF(own_seq + 1)].valid = false; crashes++ }; goto restart
	:: true
	fi;
	own_seq++;
	atomic { disk[me].c[COPY_OF(own_seq)].seq = own_seq; disk[me].c[COPY_OF(own_seq)].mbal = own_mbal;
		 disk[me].c[COPY_OF(own_seq)].bal = own_bal; disk[me].c[COPY_OF(own_seq)].inp = own_inp;
		 disk[me].c[COPY_OF(own_seq)].valid = true };
	if
	:: crashes < MAXCRASH -> crashes++; goto restart
	:: true
	fi
}

/* Read every other block against ballot b; a higher mbal sends us back to the start. In phase 1
 * also track the highest accepted value. */
inline read_others(track)
{
	j = 0;
	do
	:: j < N ->
		if
		:: j != me ->
			read_block(j);
			if
			:: rm > b -> goto restart
			:: else
			fi;
			if
			:: track && rb > bestbal -> bestbal = rb; v = ri
			:: else
			fi
		:: else
		fi;
		j++
	:: else -> break
	od
}

proctype node(byte me)
{
	byte own_seq, own_mbal, own_bal, own_inp;
	byte b, maxm, bestbal, v, j;
	byte crashes = 0, runs = 0;
	byte s0, m0, b0, i0, rs, rm, rb, ri;
	bool v0, v1;

restart:
	/* 1. our own block and the highest ballot so far */
	read_block(me);
	own_seq = rs; own_mbal = rm; own_bal = rb; own_inp = ri;
#ifdef BROKEN_FORGET_OWN
	own_bal = 0; own_inp = NONE; /* a restart that does not keep what it accepted */
#endif
	maxm = own_mbal;
	j = 0;
	do
	:: j < N ->
		if
		:: j != me -> read_block(j); if :: rm > maxm -> maxm = rm :: else fi
		:: else
		fi;
		j++
	:: else -> break
	od;
	b = (maxm / N + 1) * N + me;
	if
	:: b / N > MAXROUND -> goto done
	:: else
	fi;

	/* 2. phase 1 */
	own_mbal = b;
	write_own();
	bestbal = own_bal; v = own_inp;
	read_others(true);
	if
	:: bestbal == 0 -> v = me
	:: else
	fi;

	/* 3. phase 2 */
	own_bal = b; own_inp = v;
	write_own();
#ifndef BROKEN_SKIP_PHASE2_READ
	read_others(false);
#endif

	/* 4. decided */
	atomic {
		assert(chosen == NONE || chosen == v);
		chosen = v
	};
	if
	:: runs < MAXRUNS -> runs++; goto restart
	:: else
	fi;
done:
	skip
}

init
{
	byte k;

	atomic {
		k = 0;
		do
		:: k < N ->
			disk[k].c[0].valid = true; disk[k].c[1].valid = true;
			disk[k].c[0].inp = NONE; disk[k].c[1].inp = NONE;
			run node(k);
			k++
		:: else -> break
		od
	}
}
