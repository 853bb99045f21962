-- pairs found since yesterday (found_at is kept across incremental searches)
select path_a, path_b, mse, found_at from match_pairs where julianday(found_at) >= julianday('now', '-1 day');
