package messages_test

import (
	"errors"
	"fmt"

	"github.com/personcluster/personcluster/messages"
)

// A message travels as msgpack [type, version, body]; Decode checks all three and validates
// the body, and DecodeAs also checks that the message is of the type the caller expects.
func ExampleEncode() {
	eos := &messages.EndOfStream{Source: "cam-1", Frames: 120, Reason: "end", Params: messages.DefaultParams()}
	data, err := messages.Encode(eos)
	if err != nil {
		panic(err)
	}
	back, err := messages.DecodeAs[*messages.EndOfStream](data)
	if err != nil {
		panic(err)
	}
	fmt.Println(back.Source, back.Frames, back.Reason)
	fmt.Println(messages.HeaderValue(eos.MessageType()))
	_, err = messages.DecodeAs[*messages.Frame](data)
	fmt.Println(errors.Is(err, messages.ErrWrongType))
	// Output:
	// cam-1 120 end
	// personcluster.eos.v1
	// true
}
