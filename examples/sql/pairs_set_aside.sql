-- pairs the latest search found that decisions set aside (not duplicates)
select a.path, b.path, p.mse from pairs p
  join images a on a.id = p.image_a join images b on b.id = p.image_b
  join decisions d on d.kind = 'not-duplicates' and d.revoked_at is null
   and d.hash_a = min(a.content_hash, b.content_hash) and d.hash_b = max(a.content_hash, b.content_hash)
 where p.search_id = (select id from latest_search);
