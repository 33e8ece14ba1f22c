/* libFuzzer harness for the meter's reading of HAProxy's end-of-call records
 * (meter.h), which arrive over UDP and so may come from anyone on the host.
 *
 * Properties: meter_parse never reads outside the datagram; what it accepts has
 * every value inside it, free of the bytes that delimit values (" \ ]); counts
 * read by meter_int are 0..10^15-1; usage_normalize of any counts, in any shape,
 * gives counts that are not negative; budget_estimate_next reads a "~in:out"
 * prefix of two counts or nothing; budget_charge_next over the budget list
 * ("b") reads only inside it, moves forward, and what it accepts is an element
 * budget_charges_encode could have written (an id of [A-Za-z0-9_-], 16 hex
 * digits). Nothing may crash or leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "meter.h"
#include "usage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so ASan sees any read past the end. */
	char *d = malloc(size ? size : 1);
	if (!d)
		return 0;
	memcpy(d, data, size);
	struct meter_rec r;
	if (meter_parse(d, size, &r) == 0) {
		for (int f = 0; f < MF_COUNT; f++) {
			struct spop_slice v = r.v[f];
			if (v.len && ((const char *)v.ptr < d || (const char *)v.ptr + v.len > d + size))
				__builtin_trap();
			for (size_t i = 0; i < v.len; i++)
				if (v.ptr[i] == '"' || v.ptr[i] == '\\' || v.ptr[i] == ']')
					__builtin_trap();
		}
		int64_t raw[UF_COUNT];
		for (int f = 0; f < UF_COUNT; f++) {
			raw[f] = meter_int(r.v[MF_U0 + f]);
			if (raw[f] < -1 || raw[f] > 999999999999999LL)
				__builtin_trap();
		}
		for (int s = 0; s < SHAPE_COUNT; s++) {
			struct usage u;
			if (usage_normalize((enum err_shape)s, raw, &u) &&
			    (u.in < 0 || u.out < 0 || u.cached < 0 || u.reasoning < 0))
				__builtin_trap();
		}
		/* The limits the call is charged to, as the handler reads them. */
		struct spop_slice list = r.v[MF_BUDGET], id;
		size_t pos = 0;
		uint64_t hash;
		int64_t ein, eout;
		if (budget_estimate_next(list, &pos, &ein, &eout) &&
		    (pos > list.len || ein < 0 || eout < 0 || ein >= 1000000000000000 || eout >= 1000000000000000))
			__builtin_trap(); /* an estimate: counts of at most 15 digits, inside the list */
		for (;;) {
			size_t before = pos;
			if (!budget_charge_next(list, &pos, &id, &hash)) {
				if (pos != before)
					__builtin_trap();
				break;
			}
			if (pos <= before || pos > list.len || id.ptr != list.ptr + before || id.len == 0 ||
			    id.len >= BUDGET_ID_MAX)
				__builtin_trap();
			for (size_t i = 0; i < id.len; i++) /* an id as the policy allows it */
				if (!((id.ptr[i] >= 'a' && id.ptr[i] <= 'z') || (id.ptr[i] >= 'A' && id.ptr[i] <= 'Z') ||
				      (id.ptr[i] >= '0' && id.ptr[i] <= '9') || id.ptr[i] == '_' || id.ptr[i] == '-'))
					__builtin_trap();
			/* the element, up to its comma, is exactly "id:%016x" */
			size_t elen = pos - before - (pos < list.len || list.ptr[pos - 1] == ',' ? 1 : 0);
			char again[BUDGET_ID_MAX + 18];
			int k = snprintf(again, sizeof(again), "%.*s:%016llx", (int)id.len, (const char *)id.ptr,
			                 (unsigned long long)hash);
			if (k < 0 || (size_t)k != elen || memcmp(again, list.ptr + before, elen) != 0)
				__builtin_trap();
		}
	}
	free(d);
	return 0;
}
