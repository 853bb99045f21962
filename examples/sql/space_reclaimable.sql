-- space reclaimable: the bytes of everything but the keepers
select count(*) as files, sum(size) / 1e9 as gigabytes from match_groups where is_keeper = 0;
