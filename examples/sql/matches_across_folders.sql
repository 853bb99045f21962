-- matches across two folders: edit the two prefixes
select path_a, path_b, mse from match_pairs
 where (path_a like '/photos/phone/%' and path_b like '/photos/camera/%')
    or (path_a like '/photos/camera/%' and path_b like '/photos/phone/%');
