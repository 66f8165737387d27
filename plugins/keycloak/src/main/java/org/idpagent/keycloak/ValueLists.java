package org.idpagent.keycloak;

import jakarta.persistence.TypedQuery;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

/**
 * IN lists written as a fixed number of parameters. Hibernate translates a query whose IN list is one collection
 * parameter anew at each execution (the SQL depends on the collection's size), and for lists of hundreds of ids that
 * translation took about a quarter of Keycloak's time in a page of the users read. A list of {@code :v0, :v1, ...}
 * is plain JPQL whose translation Hibernate keeps: the values are padded to the next of a few sizes by repeating the
 * last one (a value twice in an IN list selects nothing more), so each query has a handful of shapes.
 */
final class ValueLists {

    /** The most values one list holds: Oracle takes 1,000 at most, SQL Server 2,100 parameters. */
    static final int MAX_VALUES = 1000;
    /** The smallest list written: fewer values are padded up to it. */
    static final int MIN_VALUES = 8;

    private static final ConcurrentHashMap<Integer, String> WRITTEN = new ConcurrentHashMap<>();

    private ValueLists() {
    }

    /** How many parameters a list of {@code count} values (1 to MAX_VALUES) is written with. */
    private static int size(int count) {
        if (count < 1 || count > MAX_VALUES) {
            throw new IllegalArgumentException("a list holds 1 to " + MAX_VALUES + " values, not " + count);
        }
        int size = MIN_VALUES;
        while (size < count) {
            size *= 2;
        }
        return Math.min(size, MAX_VALUES);
    }

    /** {@code jpql}, which ends in "in ", with the list {@code values} are bound to by {@link #bind}. */
    static String in(String jpql, List<String> values) {
        return jpql + parameters(size(values.size()));
    }

    /** "(:v0, :v1, ...)" with {@code size} parameters. */
    private static String parameters(int size) {
        return WRITTEN.computeIfAbsent(size, n -> IntStream.range(0, n).mapToObj(i -> ":v" + i)
                .collect(Collectors.joining(", ", "(", ")")));
    }

    /** {@code values} (1 to MAX_VALUES of them) bound to the list of a query written by {@link #in}. */
    static <T> TypedQuery<T> bind(TypedQuery<T> query, List<String> values) {
        int size = size(values.size());
        for (int i = 0; i < size; i++) {
            query.setParameter("v" + i, values.get(Math.min(i, values.size() - 1)));
        }
        return query;
    }
}
