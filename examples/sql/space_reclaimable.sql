-- space reclaimable: the bytes of everything not kept (keepers, pinned and reference images stay)
select count(*) as files, sum(size) / 1e9 as gigabytes from match_groups where keep_reason is null;
