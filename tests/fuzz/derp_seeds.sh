#!/bin/sh
# Writes the hand-made seed corpora of fuzz_derp_client and fuzz_derp_info
# (committed; rerun after changing a seed).  Frames as in
# dataplane-protocols.md A.5; JSON as Go's client and server write it, and
# the cases of derp_test.go TestClientInfoUnmarshal.
set -eu
cd "$(dirname "$0")/corpus"
C=fuzz_derp_client I=fuzz_derp_info
mkdir -p $C $I

HEAD='HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Version: 2\r\nDerp-Public-Key: 6d529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d8\r\n\r\n'
K32='\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017\020\021\022\023\024\025\026\027\030\031\032\033\034\035\036\037\040'
MAGIC='DERP\360\237\224\221'
KEEPALIVE='\006\000\000\000\000'
PING='\022\000\000\000\010\001\002\003\004\005\006\007\010'
PONG='\023\000\000\000\010\001\002\003\004\005\006\007\010'
RESTARTING='\025\000\000\000\010\000\000\000\001\000\000\000\002'
HEALTH='\024\000\000\000\003BAD'
SERVERKEY="\\001\\000\\000\\000\\050$MAGIC$K32"
NONCE24='\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252\252'
SERVERINFO="\\003\\000\\000\\000\\060$NONCE24$NONCE24"
RECV="\\005\\000\\000\\000\\045${K32}hello"
DISCO="\\005\\000\\000\\000\\142${K32}TS\\360\\237\\222\\254$K32$NONCE24"
GONE="\\010\\000\\000\\000\\041${K32}\\001"
GONE32="\\010\\000\\000\\000\\040${K32}"
PRESENT="\\011\\000\\000\\000\\063${K32}\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\377\\377\\144\\100\\000\\001\\242\\051\\011"
PRESENT32="\\011\\000\\000\\000\\040${K32}"
PRESENT40="\\011\\000\\000\\000\\050${K32}\\000\\000\\000\\000\\000\\000\\000\\000"
PRESENT50="\\011\\000\\000\\000\\062${K32}\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\377\\377\\144\\100\\000\\001\\242\\051"

printf "$HEAD$SERVERKEY$SERVERINFO$KEEPALIVE$RECV$DISCO$PING$HEALTH$RESTARTING$GONE$PRESENT" >$C/session
printf "$HEAD$KEEPALIVE$PING$PONG$RESTARTING$HEALTH\\024\\000\\000\\000\\000" >$C/examples
printf "$HEAD$SERVERKEY$GONE32$PRESENT32$PRESENT40$PRESENT50\\042\\000\\000\\000\\002xy" >$C/old_server
printf 'HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\n\r\nDERP requires connection upgrade' >$C/refused
printf "${HEAD}${SERVERKEY}\\005\\000\\000\\004\\000${K32}" >$C/partial
printf "${HEAD}${KEEPALIVE}\\005\\000\\040\\000\\000" >$C/oversized
printf "HTTP/1.1 101 Switching Protocols\\r\\n\\r\\n\\001\\000\\000\\000\\050DERP\\360\\237\\224\\220$K32" >$C/bad_magic

printf '{"version":2,"CanAckPings":true}' >$I/client_go
printf '{"Version":5,"MeshKey":"6d529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d8"}' >$I/mesh_upper
printf '{"meshKey":"6d529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d8","version":2,"CanAckPings":false,"IsProber":true,"AppName":"tailkit"}' >$I/client_full
printf '{"version":5,"meshKey":"abcdefg"}' >$I/mesh_short
printf '{"version":2}' >$I/server_go
printf '{"version":2,"TokenBucketBytesPerSecond":1048576,"TokenBucketBytesBurst":-9223372036854775808}' >$I/server_bucket
printf 'null' >$I/null
printf '{"version":1,"Version":null,"version":3,"x":[1,{"a":"\\u00e9"},2.5e-3,true,false,null]}' >$I/dups
printf '{"ver\305\277ion":4,"CanAc\342\204\252Pings":true,"AppName":"a\\u0000\\ud83d\\ude00\\ud800\377"}' >$I/unicode
