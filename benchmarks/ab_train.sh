# Sourced by the A/B scripts (mmse_recipe.sh, noise_levels.sh): one short mnist32 training run of
# their shared recipe, continued with --resume when it exists.
#   ab_train NAME [extra invfussion train flags...]   (uses $RUNS and $STEPS; log in $RUNS/NAME.log)
ab_train() {
  local name=$1; shift
  local resume=(); [ -e "$RUNS/$name/checkpoints/latest" ] && resume=(--resume)
  invfussion train --steps "$STEPS" --batch-size 64 --lr 4e-4 --warmup-steps 200 --log-every 50 \
    --sample-every 1000 --checkpoint-every 500 --keep-checkpoints 10 --num-workers 0 \
    --out "$RUNS/$name" "${resume[@]}" "$@" > "$RUNS/$name.log" 2>&1
}
