#!/bin/bash
start=$EPOCHREALTIME
"$@"
echo "$start $EPOCHREALTIME" >"$APP_TIME"
